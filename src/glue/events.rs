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

use crate::core::events::{ArgumentsOf, Event, EventBody};

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
const ARGS_DELTA: &str = "response.function_call_arguments.delta";
const MCP_ARGS_DELTA: &str = "response.mcp_call.arguments.delta";
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
    /// Every field already in place (constants filled in): an event is a copy with a few values
    /// replaced, which costs less than building a dict of seven entries (and resizing it) each time.
    template: Py<PyDict>,
    /// The class is allocated directly when its `__new__` is object's own (pydantic models' is).
    plain_new: bool,
}

/// The Python string for the item id deltas refer to, kept across chunks: every delta of an item
/// carries the same id, and building it anew each time is measurable on the hot path.
#[derive(Default)]
pub struct IdCache {
    last: Option<(String, Py<PyString>)>,
}

impl IdCache {
    fn get<'py>(&mut self, py: Python<'py>, id: &str) -> Bound<'py, PyString> {
        if let Some((s, obj)) = &self.last {
            if s == id {
                return obj.bind(py).clone();
            }
        }
        let obj = PyString::new(py, id);
        self.last = Some((id.to_owned(), obj.clone().unbind()));
        obj
    }
}

#[pyclass(module = "responses_rs._core", frozen)]
pub struct EventFactory {
    classes: HashMap<String, Py<PyType>>,
    /// Delta classes whose fields are exactly what the fast path fills in.
    text_delta: Option<FastClass>,
    args_delta: Option<FastClass>,
    mcp_args_delta: Option<FastClass>,
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
        let object_new = py
            .import("builtins")?
            .getattr("object")?
            .getattr("__new__")?;
        let mut by_type = HashMap::new();
        let (mut text_delta, mut args_delta, mut mcp_args_delta) = (None, None, None);
        for (k, v) in classes.iter() {
            let name: String = k.extract()?;
            let cls = v.cast::<PyType>()?.clone();
            let slot = match name.as_str() {
                TEXT_DELTA => Some((&mut text_delta, &TEXT_DELTA_FIELDS[..])),
                ARGS_DELTA => Some((&mut args_delta, &ARGS_DELTA_FIELDS[..])),
                MCP_ARGS_DELTA => Some((&mut mcp_args_delta, &ARGS_DELTA_FIELDS[..])),
                _ => None,
            };
            if let Some((slot, expected)) = slot {
                // Only take the fast path when the class has exactly the fields it fills in; any
                // other class still works, through validation.
                let names = field_names(&cls)?;
                if names
                    .iter()
                    .map(String::as_str)
                    .eq(expected.iter().copied())
                {
                    let template = PyDict::new(py);
                    for field in expected {
                        template.set_item(*field, py.None())?;
                    }
                    // The values the hot path leaves alone unless they differ.
                    template.set_item("type", &name)?;
                    template.set_item("content_index", 0)?;
                    template.set_item("output_index", 0)?;
                    let plain_new = cls.getattr("__new__")?.is(&object_new);
                    *slot = Some(FastClass {
                        cls: cls.clone().unbind(),
                        fields_set: PySet::new(py, expected)?.unbind(),
                        template: template.unbind(),
                        plain_new,
                    });
                }
            }
            by_type.insert(name, cls.unbind());
        }
        if let Some(args) = &args_delta {
            args.template.bind(py).del_item("content_index")?;
        }
        if let Some(args) = &mcp_args_delta {
            args.template.bind(py).del_item("content_index")?;
        }
        Ok(EventFactory {
            classes: by_type,
            text_delta,
            args_delta,
            mcp_args_delta,
            object_new: object_new.unbind(),
        })
    }

    /// The event types this factory builds without validation (for tests and the benchmark).
    #[getter]
    fn fast_types<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
        let names = [
            (TEXT_DELTA, &self.text_delta),
            (ARGS_DELTA, &self.args_delta),
            (MCP_ARGS_DELTA, &self.mcp_args_delta),
        ];
        PyFrozenSet::new(
            py,
            names.iter().filter(|(_, c)| c.is_some()).map(|(n, _)| *n),
        )
    }
}

impl EventFactory {
    pub fn build<'py>(
        &self,
        py: Python<'py>,
        event: &Event,
        text: Option<&Bound<'py, PyString>>,
        ids: &mut IdCache,
    ) -> PyResult<Bound<'py, PyAny>> {
        match &event.body {
            EventBody::TextDelta {
                item_id,
                output_index,
                content_index,
                delta,
            } => {
                if let Some(fast) = &self.text_delta {
                    let d = fast.template.bind(py).copy()?;
                    // The chunk's own string object is the delta; no copy of the text is made.
                    match text {
                        Some(t) if t.to_str()? == delta => {
                            d.set_item(pyo3::intern!(py, "delta"), t)?
                        }
                        _ => d.set_item(pyo3::intern!(py, "delta"), delta)?,
                    }
                    d.set_item(pyo3::intern!(py, "item_id"), ids.get(py, item_id))?;
                    d.set_item(pyo3::intern!(py, "logprobs"), PyList::empty(py))?;
                    if *output_index != 0 {
                        d.set_item(pyo3::intern!(py, "output_index"), *output_index)?;
                    }
                    if *content_index != 0 {
                        d.set_item(pyo3::intern!(py, "content_index"), *content_index)?;
                    }
                    d.set_item(pyo3::intern!(py, "sequence_number"), event.sequence_number)?;
                    return self.construct(py, fast, d);
                }
            }
            EventBody::ArgumentsDelta {
                of,
                item_id,
                output_index,
                delta,
            } => {
                let fast = match of {
                    ArgumentsOf::Function => &self.args_delta,
                    ArgumentsOf::Mcp => &self.mcp_args_delta,
                };
                if let Some(fast) = fast {
                    let d = fast.template.bind(py).copy()?;
                    d.set_item(pyo3::intern!(py, "delta"), delta)?;
                    d.set_item(pyo3::intern!(py, "item_id"), ids.get(py, item_id))?;
                    if *output_index != 0 {
                        d.set_item(pyo3::intern!(py, "output_index"), *output_index)?;
                    }
                    d.set_item(pyo3::intern!(py, "sequence_number"), event.sequence_number)?;
                    return self.construct(py, fast, d);
                }
            }
            _ => {}
        }
        let type_name = event.type_name();
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
        let cls = fast.cls.bind(py);
        let obj = if fast.plain_new {
            // SAFETY: `object.__new__(cls)` is exactly `cls->tp_alloc(cls, 0)` for a class whose
            // `__new__` is object's own (checked at registration); a null result carries a Python error.
            unsafe {
                let tp = cls.as_ptr() as *mut pyo3::ffi::PyTypeObject;
                let alloc = (*tp).tp_alloc.unwrap_or(pyo3::ffi::PyType_GenericAlloc);
                Bound::from_owned_ptr_or_err(py, alloc(tp, 0))?
            }
        } else {
            self.object_new.bind(py).call1((cls,))?
        };
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
