//! Building stream event objects.
//!
//! llama-stack's server serialises each event with `model_dump_json()` when it is a pydantic model
//! (and fails with anything else), so events are instances of the pydantic classes the driver
//! registers. Rare events are validated from JSON. The per-chunk deltas are built the way pydantic's
//! own `model_construct` does, but from Rust: a new instance, its `__dict__`, and the three pydantic
//! slots. Validating or calling the class would cost 2–3 µs per chunk, more than the whole budget.

use std::collections::HashMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFrozenSet, PyList, PySet, PyString, PyType};

use crate::core::events::{Event, EventBody};

const TEXT_DELTA: &str = "response.output_text.delta";
const TEXT_DELTA_FIELDS: [&str; 7] = [
    "content_index",
    "delta",
    "item_id",
    "logprobs",
    "output_index",
    "sequence_number",
    "type",
];
const ARGS_DELTA_FIELDS: [&str; 5] = [
    "delta",
    "item_id",
    "output_index",
    "sequence_number",
    "type",
];

struct FastClass {
    cls: Py<PyType>,
    fields_set: Py<PySet>,
}

#[pyclass(module = "responses_rs._core", frozen)]
pub struct EventFactory {
    classes: HashMap<String, Py<PyType>>,
    /// Delta classes whose fields are exactly what the fast path fills in.
    fast: HashMap<String, FastClass>,
    object_new: Py<PyAny>,
}

fn field_names(cls: &Bound<'_, PyType>) -> PyResult<Vec<String>> {
    let fields = cls.getattr("model_fields")?;
    let mut names: Vec<String> = fields
        .try_iter()?
        .map(|k| k.and_then(|k| k.extract::<String>()))
        .collect::<PyResult<_>>()?;
    names.sort();
    Ok(names)
}

#[pymethods]
impl EventFactory {
    /// `classes` maps each event `type` to its pydantic class.
    #[new]
    fn new(py: Python<'_>, classes: &Bound<'_, PyDict>) -> PyResult<Self> {
        let mut by_type = HashMap::new();
        let mut fast = HashMap::new();
        for (k, v) in classes.iter() {
            let name: String = k.extract()?;
            let cls = v.cast::<PyType>()?.clone();
            let expected: Option<&[&str]> = match name.as_str() {
                TEXT_DELTA => Some(&TEXT_DELTA_FIELDS),
                "response.function_call_arguments.delta" | "response.mcp_call.arguments.delta" => {
                    Some(&ARGS_DELTA_FIELDS)
                }
                _ => None,
            };
            if let Some(expected) = expected {
                // Only take the fast path when the class has exactly the fields it fills in; any
                // other class still works, through validation.
                let names = field_names(&cls)?;
                if names
                    .iter()
                    .map(String::as_str)
                    .eq(expected.iter().copied())
                {
                    let fields = PySet::new(py, expected)?;
                    fast.insert(
                        name.clone(),
                        FastClass {
                            cls: cls.clone().unbind(),
                            fields_set: fields.unbind(),
                        },
                    );
                }
            }
            by_type.insert(name, cls.unbind());
        }
        let object_new = py
            .import("builtins")?
            .getattr("object")?
            .getattr("__new__")?
            .unbind();
        Ok(EventFactory {
            classes: by_type,
            fast,
            object_new,
        })
    }

    /// The event types this factory builds without validation (for tests and the benchmark).
    #[getter]
    fn fast_types<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
        PyFrozenSet::new(py, self.fast.keys())
    }
}

impl EventFactory {
    pub fn build<'py>(
        &self,
        py: Python<'py>,
        event: &Event,
        text: Option<&Bound<'py, PyString>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let type_name = event.type_name();
        match &event.body {
            EventBody::TextDelta {
                item_id,
                output_index,
                content_index,
                delta,
            } => {
                if let Some(fast) = self.fast.get(type_name) {
                    let d = PyDict::new(py);
                    d.set_item(pyo3::intern!(py, "content_index"), *content_index)?;
                    match text {
                        Some(t) if t.to_str()? == delta => {
                            d.set_item(pyo3::intern!(py, "delta"), t)?
                        }
                        _ => d.set_item(pyo3::intern!(py, "delta"), delta)?,
                    }
                    d.set_item(pyo3::intern!(py, "item_id"), item_id)?;
                    d.set_item(pyo3::intern!(py, "logprobs"), PyList::empty(py))?;
                    d.set_item(pyo3::intern!(py, "output_index"), *output_index)?;
                    d.set_item(pyo3::intern!(py, "sequence_number"), event.sequence_number)?;
                    d.set_item(pyo3::intern!(py, "type"), pyo3::intern!(py, TEXT_DELTA))?;
                    return self.construct(py, fast, d);
                }
            }
            EventBody::ArgumentsDelta {
                item_id,
                output_index,
                delta,
                ..
            } => {
                if let Some(fast) = self.fast.get(type_name) {
                    let d = PyDict::new(py);
                    d.set_item(pyo3::intern!(py, "delta"), delta)?;
                    d.set_item(pyo3::intern!(py, "item_id"), item_id)?;
                    d.set_item(pyo3::intern!(py, "output_index"), *output_index)?;
                    d.set_item(pyo3::intern!(py, "sequence_number"), event.sequence_number)?;
                    d.set_item(pyo3::intern!(py, "type"), PyString::new(py, type_name))?;
                    return self.construct(py, fast, d);
                }
            }
            _ => {}
        }
        let cls = self.classes.get(type_name).ok_or_else(|| {
            PyValueError::new_err(format!("no event class registered for '{type_name}'"))
        })?;
        let json = event.to_json().to_string();
        cls.bind(py)
            .call_method1(pyo3::intern!(py, "model_validate_json"), (json,))
    }

    /// What pydantic's `model_construct` does, minus its Python-level overhead.
    fn construct<'py>(
        &self,
        py: Python<'py>,
        fast: &FastClass,
        dict: Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let obj = self.object_new.bind(py).call1((fast.cls.bind(py),))?;
        // object.__setattr__: pydantic's own __setattr__ would validate and reject the dunders.
        generic_setattr(&obj, pyo3::intern!(py, "__dict__"), dict.as_any())?;
        // All fields are set, and nothing ever adds to this set (assigning a declared field adds a
        // name that is already in it), so one set per class is shared by its events.
        generic_setattr(
            &obj,
            pyo3::intern!(py, "__pydantic_fields_set__"),
            fast.fields_set.bind(py).as_any(),
        )?;
        let none = py.None().into_bound(py);
        generic_setattr(&obj, pyo3::intern!(py, "__pydantic_extra__"), &none)?;
        generic_setattr(&obj, pyo3::intern!(py, "__pydantic_private__"), &none)?;
        Ok(obj)
    }
}

fn generic_setattr(
    obj: &Bound<'_, PyAny>,
    name: &Bound<'_, PyString>,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    // SAFETY: all three pointers are valid, owned by Bound handles that outlive the call.
    let rc =
        unsafe { pyo3::ffi::PyObject_GenericSetAttr(obj.as_ptr(), name.as_ptr(), value.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(obj.py()))
    }
}
