//! Moving data between Python objects and `serde_json::Value` without a JSON round trip.
//!
//! Request data arrives as llama-stack pydantic objects, openai SDK objects or plain dicts. A pydantic
//! model's field values live in its `__dict__`, so reading that is far cheaper than `model_dump()`
//! and works the same for every pydantic class, whichever library defined it.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

const MAX_DEPTH: usize = 64;

pub fn py_to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    py_to_value_at(obj, "value")
}

/// `py_to_value` for a request field named `root`: a string that is not valid Unicode (a lone
/// surrogate, which JSON's `\ud800` escapes can produce) is a `ValueError` naming where it is,
/// e.g. `input[0].content[1].text`.
pub fn py_to_value_at(obj: &Bound<'_, PyAny>, root: &str) -> PyResult<Value> {
    match to_value(obj, 0) {
        Ok(v) => Ok(v),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyUnicodeEncodeError>(obj.py()) => {
            let path = locate_invalid_string(obj, root, 0).unwrap_or_else(|| root.to_owned());
            Err(PyValueError::new_err(format!(
                "{path}: contains a lone surrogate (text that is not valid Unicode)"
            )))
        }
        Err(e) => Err(e),
    }
}

/// The path of the first string under `obj` that is not valid UTF-8 material (slow path, only
/// after a conversion failed).
fn locate_invalid_string(obj: &Bound<'_, PyAny>, path: &str, depth: usize) -> Option<String> {
    if depth > MAX_DEPTH {
        return None;
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return s.to_str().is_err().then(|| path.to_owned());
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return d.iter().find_map(|(k, v)| {
            let key = k.str().ok()?.to_string_lossy().into_owned();
            locate_invalid_string(&v, &format!("{path}.{key}"), depth + 1)
        });
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .enumerate()
            .find_map(|(i, v)| locate_invalid_string(&v, &format!("{path}[{i}]"), depth + 1));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t
            .iter()
            .enumerate()
            .find_map(|(i, v)| locate_invalid_string(&v, &format!("{path}[{i}]"), depth + 1));
    }
    let py = obj.py();
    if let Ok(fields) = obj.getattr(pyo3::intern!(py, "__dict__")) {
        if obj
            .hasattr(pyo3::intern!(py, "__pydantic_fields_set__"))
            .unwrap_or(false)
        {
            return locate_invalid_string(&fields, path, depth);
        }
    }
    None
}

fn to_value(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err("value is nested too deeply"));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_str()?.to_owned()));
    }
    // bool before int: Python's bool is an int.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        if let Ok(v) = i.extract::<i64>() {
            return Ok(Value::Number(v.into()));
        }
        if let Ok(v) = i.extract::<u64>() {
            return Ok(Value::Number(v.into()));
        }
        return Ok(Value::String(i.str()?.to_str()?.to_owned()));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Number::from_f64(f.value())
            .map(Value::Number)
            .unwrap_or(Value::Null));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return dict_to_value(d, depth);
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .map(|v| to_value(&v, depth + 1))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t
            .iter()
            .map(|v| to_value(&v, depth + 1))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    let py = obj.py();
    // A pydantic model: its fields are in __dict__, extra fields (openai SDK objects) in __pydantic_extra__.
    if obj.hasattr(pyo3::intern!(py, "__pydantic_fields_set__"))? {
        let fields = obj.getattr(pyo3::intern!(py, "__dict__"))?;
        let mut value = dict_to_value(fields.cast::<PyDict>()?, depth)?;
        if let Ok(extra) = obj.getattr(pyo3::intern!(py, "__pydantic_extra__")) {
            if let (Ok(extra), Value::Object(map)) = (extra.cast::<PyDict>(), &mut value) {
                for (k, v) in extra.iter() {
                    map.insert(k.str()?.to_str()?.to_owned(), to_value(&v, depth + 1)?);
                }
            }
        }
        return Ok(value);
    }
    // An Enum member: its value.
    if let Ok(v) = obj.getattr(pyo3::intern!(py, "value")) {
        if obj.hasattr(pyo3::intern!(py, "_name_"))? {
            return to_value(&v, depth + 1);
        }
    }
    // Any other iterable (a set, a generator): as a list.
    if let Ok(iter) = obj.try_iter() {
        return iter
            .map(|v| v.and_then(|v| to_value(&v, depth + 1)))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    Err(PyValueError::new_err(format!(
        "cannot read a value of type '{}'",
        obj.get_type().name()?
    )))
}

fn dict_to_value(d: &Bound<'_, PyDict>, depth: usize) -> PyResult<Value> {
    let mut map = Map::with_capacity(d.len());
    for (k, v) in d.iter() {
        let key = match k.cast::<PyString>() {
            Ok(s) => s.to_str()?.to_owned(),
            Err(_) => k.str()?.to_str()?.to_owned(),
        };
        map.insert(key, to_value(&v, depth + 1)?);
    }
    Ok(Value::Object(map))
}

pub fn value_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, value_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}
