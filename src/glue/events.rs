//! Building stream event objects.
//!
//! llama-stack's server serialises each event with `model_dump_json()` when it is a pydantic model
//! (and fails with anything else), so events are instances of the pydantic classes the driver
//! registers. Rare events are validated from JSON. The per-chunk deltas are built the way pydantic's
//! own `model_construct` does, but from Rust: a new instance, its `__dict__`, and the three pydantic
//! slots. Validating or calling the class would cost 2–3 µs per chunk, more than the whole budget.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFrozenSet, PyList, PySet, PyString, PyType};

use crate::core::events::{DeltaKind, Event, EventBody};
use crate::core::turn::DirectDelta;

/// Above this size (bytes of text it carries) an event is validated from Python objects instead of
/// JSON text.
const LARGE_EVENT: usize = 4096;
/// Every delta kind, in the order of `EventFactory::fast`.
const DELTA_KINDS: [DeltaKind; 6] = [
    DeltaKind::OutputText,
    DeltaKind::Refusal,
    DeltaKind::ReasoningText,
    DeltaKind::FunctionArguments,
    DeltaKind::McpArguments,
    DeltaKind::CustomToolInput,
];

fn slot(kind: DeltaKind) -> usize {
    match kind {
        DeltaKind::OutputText => 0,
        DeltaKind::Refusal => 1,
        DeltaKind::ReasoningText => 2,
        DeltaKind::FunctionArguments => 3,
        DeltaKind::McpArguments => 4,
        DeltaKind::CustomToolInput => 5,
    }
}

/// The fields a delta event of this kind has (sorted), which the fast path fills in.
fn delta_fields(kind: DeltaKind) -> &'static [&'static str] {
    match kind {
        DeltaKind::OutputText => &[
            "content_index",
            "delta",
            "item_id",
            "logprobs",
            "output_index",
            "sequence_number",
            "type",
        ],
        DeltaKind::Refusal | DeltaKind::ReasoningText => &[
            "content_index",
            "delta",
            "item_id",
            "output_index",
            "sequence_number",
            "type",
        ],
        DeltaKind::FunctionArguments | DeltaKind::McpArguments | DeltaKind::CustomToolInput => &[
            "delta",
            "item_id",
            "output_index",
            "sequence_number",
            "type",
        ],
    }
}

struct FastClass {
    cls: Py<PyType>,
    fields_set: Py<PySet>,
    /// Every field already in place (constants filled in): an event is a copy with a few values
    /// replaced, which costs less than building a dict of seven entries (and resizing it) each time.
    template: Py<PyDict>,
    /// The class is allocated directly when its `__new__` is object's own (pydantic models' is).
    plain_new: bool,
}

/// Per-turn state of the hot path.
#[derive(Default)]
pub struct HotState {
    /// The Python string of the item id the deltas refer to: every delta of an item carries the
    /// same id, and building it anew each time is measurable.
    last_id: Option<(Arc<str>, Py<PyString>)>,
    /// Delta events handed out earlier, for reuse once nobody else holds them (see `reuse`).
    text_pool: Vec<Pooled>,
    args_pool: Vec<Pooled>,
}

/// A delta event kept for reuse, with the values its dict holds now, so a refill only touches what
/// changed (usually the delta and the sequence number).
struct Pooled {
    obj: Py<PyAny>,
    /// Address of the item id string the dict holds (compared, never dereferenced).
    item_id: usize,
    output_index: usize,
    content_index: usize,
}

/// How many handed-out delta events a turn keeps for reuse. A consumer's loop variable still holds
/// the previous event while the next one is made, so one is never enough.
const POOL: usize = 4;

impl HotState {
    fn id<'py>(&mut self, py: Python<'py>, id: &Arc<str>) -> Bound<'py, PyString> {
        if let Some((s, obj)) = &self.last_id {
            if Arc::ptr_eq(s, id) {
                return obj.bind(py).clone();
            }
        }
        let obj = PyString::new(py, id);
        self.last_id = Some((id.clone(), obj.clone().unbind()));
        obj
    }
}

/// `Py_TPFLAGS_MANAGED_WEAKREF` (CPython 3.12+, `object.h`); the bit is unused before 3.12.
const MANAGED_WEAKREF: std::os::raw::c_ulong = 1 << 3;

/// The instance dict of a pooled event when nothing but the pool refers to the event, its dict or
/// (through a weak reference) to either: then changing it in place is invisible to everyone, and the
/// event can be handed out again instead of allocating, filling and later freeing a new one.
fn reusable_dict(obj: &Py<PyAny>) -> Option<*mut pyo3::ffi::PyObject> {
    // SAFETY: reads of a live object's refcount, type slots and instance-dict slot, per CPython's
    // object layout; nothing is written here.
    unsafe {
        let ptr = obj.as_ptr();
        if pyo3::ffi::Py_REFCNT(ptr) != 1 {
            return None;
        }
        let tp = pyo3::ffi::Py_TYPE(ptr);
        let weak_offset = (*tp).tp_weaklistoffset;
        // Python 3.12+ keeps a class's weak reference list before the object header
        // (`Py_TPFLAGS_MANAGED_WEAKREF`, a negative offset): every class without `__slots__`, so
        // every pydantic event class there. It is read at the offset all the same, as CPython's
        // `_PyObject_GET_WEAKREFS_LISTPTR` does; any other negative offset is not trusted.
        if weak_offset > 0 || (weak_offset < 0 && (*tp).tp_flags & MANAGED_WEAKREF != 0) {
            let weaklist = *((ptr as *mut u8).offset(weak_offset) as *mut *mut pyo3::ffi::PyObject);
            if !weaklist.is_null() {
                return None;
            }
        } else if weak_offset < 0 {
            return None;
        }
        let slot = super::_PyObject_GetDictPtr(ptr);
        if slot.is_null() || (*slot).is_null() || pyo3::ffi::Py_REFCNT(*slot) != 1 {
            return None;
        }
        Some(*slot)
    }
}

/// `dict[key] = value` without pyo3's generic conversions (this runs once per field per chunk).
#[inline]
fn dict_set(
    dict: *mut pyo3::ffi::PyObject,
    key: &Bound<'_, PyString>,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    // SAFETY: `dict` is a live dict (from a Bound or `reusable_dict`), key and value live Bounds.
    let rc = unsafe { pyo3::ffi::PyDict_SetItem(dict, key.as_ptr(), value.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(key.py()))
    }
}

#[pyclass(module = "responses_rs._core", frozen)]
pub struct EventFactory {
    classes: HashMap<String, Py<PyType>>,
    /// Delta classes whose fields are exactly what the fast path fills in, by `slot(kind)`.
    fast: [Option<FastClass>; 6],
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
        let mut fast: [Option<FastClass>; 6] = Default::default();
        for (k, v) in classes.iter() {
            let name: String = k.extract()?;
            let cls = v.cast::<PyType>()?.clone();
            if let Some(kind) = DELTA_KINDS.iter().find(|k| k.delta_type() == name) {
                let expected = delta_fields(*kind);
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
                    if kind.in_content_part() {
                        template.set_item("content_index", 0)?;
                    }
                    template.set_item("output_index", 0)?;
                    let plain_new = cls.getattr("__new__")?.is(&object_new);
                    fast[slot(*kind)] = Some(FastClass {
                        cls: cls.clone().unbind(),
                        fields_set: PySet::new(py, expected)?.unbind(),
                        template: template.unbind(),
                        plain_new,
                    });
                }
            }
            by_type.insert(name, cls.unbind());
        }
        Ok(EventFactory {
            classes: by_type,
            fast,
            object_new: object_new.unbind(),
        })
    }

    /// The event types this factory builds without validation (for tests and the benchmark).
    #[getter]
    fn fast_types<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
        PyFrozenSet::new(
            py,
            DELTA_KINDS
                .iter()
                .filter(|k| self.fast[slot(**k)].is_some())
                .map(|k| k.delta_type()),
        )
    }
}

impl EventFactory {
    pub fn build<'py>(
        &self,
        py: Python<'py>,
        event: &Event,
        text: Option<&Bound<'py, PyString>>,
        hot: &mut HotState,
    ) -> PyResult<Bound<'py, PyAny>> {
        let EventBody::Delta {
            kind,
            item_id,
            output_index,
            content_index,
            delta,
        } = &event.body
        else {
            return self.build_validated(py, event);
        };
        match &self.fast[slot(*kind)] {
            Some(fast) => {
                // The chunk's own string object is the delta when it is the same text: no copy.
                let delta_obj = match text {
                    Some(t) if t.to_str()? == delta => t.clone(),
                    _ => PyString::new(py, delta),
                };
                self.fast_delta(
                    py,
                    fast,
                    *kind,
                    item_id,
                    *output_index,
                    *content_index,
                    event.sequence_number,
                    delta_obj,
                    hot,
                )
            }
            None => self.build_validated(py, event),
        }
    }

    /// The delta event the core handed back instead of queueing (`Turn::text_delta_direct`); `text`
    /// is the very piece that was fed.
    pub fn build_direct<'py>(
        &self,
        py: Python<'py>,
        delta: &DirectDelta,
        text: Bound<'py, PyString>,
        hot: &mut HotState,
    ) -> PyResult<Bound<'py, PyAny>> {
        match &self.fast[slot(delta.kind)] {
            Some(fast) => self.fast_delta(
                py,
                fast,
                delta.kind,
                &delta.item_id,
                delta.output_index,
                delta.content_index,
                delta.sequence_number,
                text,
                hot,
            ),
            // A class without the fast layout: the same event, validated.
            None => {
                let event = Event {
                    sequence_number: delta.sequence_number,
                    body: EventBody::Delta {
                        kind: delta.kind,
                        item_id: delta.item_id.clone(),
                        output_index: delta.output_index,
                        content_index: delta.content_index,
                        delta: text.to_str()?.to_owned(),
                    },
                };
                self.build_validated(py, &event)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fast_delta<'py>(
        &self,
        py: Python<'py>,
        fast: &FastClass,
        kind: DeltaKind,
        item_id: &Arc<str>,
        output_index: usize,
        content_index: usize,
        sequence_number: u64,
        delta_obj: Bound<'py, PyString>,
        hot: &mut HotState,
    ) -> PyResult<Bound<'py, PyAny>> {
        {
            let id_obj = hot.id(py, item_id);
            let seq = sequence_number.into_pyobject(py)?;
            let is_text = kind == DeltaKind::OutputText;
            let pool = if kind.in_content_part() {
                &mut hot.text_pool
            } else {
                &mut hot.args_pool
            };
            // A pooled event of the same class that nobody holds any more is refilled in place.
            let slot = pool.iter().enumerate().find_map(|(i, p)| {
                if !p.obj.bind(py).get_type().is(fast.cls.bind(py)) {
                    return None;
                }
                reusable_dict(&p.obj).map(|dict| (i, dict))
            });
            let (obj, dict, known) = match slot {
                Some((i, dict)) => (pool[i].obj.clone_ref(py).into_bound(py), dict, Some(i)),
                None => {
                    let d = fast.template.bind(py).copy()?;
                    let dict = d.as_ptr();
                    let obj = self.construct(py, fast, d)?;
                    let known = if pool.len() < POOL {
                        pool.push(Pooled {
                            obj: obj.clone().unbind(),
                            item_id: 0,
                            output_index: usize::MAX,
                            content_index: usize::MAX,
                        });
                        Some(pool.len() - 1)
                    } else {
                        None
                    };
                    (obj, dict, known)
                }
            };
            if is_text {
                // Someone may have kept the previous event's list (and appended to it).
                // SAFETY: `dict` is a live dict; the item is borrowed only for the checks.
                let fresh = unsafe {
                    let lp = pyo3::ffi::PyDict_GetItemWithError(
                        dict,
                        pyo3::intern!(py, "logprobs").as_ptr(),
                    );
                    if lp.is_null() {
                        pyo3::ffi::PyErr_Clear();
                    }
                    lp.is_null()
                        || pyo3::ffi::Py_REFCNT(lp) != 1
                        || pyo3::ffi::PyList_Check(lp) == 0
                        || pyo3::ffi::PyList_Size(lp) != 0
                };
                if fresh {
                    dict_set(
                        dict,
                        pyo3::intern!(py, "logprobs"),
                        PyList::empty(py).as_any(),
                    )?;
                }
            }
            dict_set(dict, pyo3::intern!(py, "delta"), delta_obj.as_any())?;
            dict_set(dict, pyo3::intern!(py, "sequence_number"), seq.as_any())?;
            let mut known = known.map(|i| &mut pool[i]);
            if known
                .as_ref()
                .is_none_or(|p| p.item_id != id_obj.as_ptr() as usize)
            {
                dict_set(dict, pyo3::intern!(py, "item_id"), id_obj.as_any())?;
            }
            if known
                .as_ref()
                .is_none_or(|p| p.output_index != output_index)
            {
                let value = output_index.into_pyobject(py)?;
                dict_set(dict, pyo3::intern!(py, "output_index"), value.as_any())?;
            }
            if kind.in_content_part()
                && known
                    .as_ref()
                    .is_none_or(|p| p.content_index != content_index)
            {
                let value = content_index.into_pyobject(py)?;
                dict_set(dict, pyo3::intern!(py, "content_index"), value.as_any())?;
            }
            if let Some(p) = known.as_mut() {
                p.item_id = id_obj.as_ptr() as usize;
                p.output_index = output_index;
                p.content_index = content_index;
            }
            Ok(obj)
        }
    }

    /// Any event, validated from its JSON into its registered class.
    fn build_validated<'py>(&self, py: Python<'py>, event: &Event) -> PyResult<Bound<'py, PyAny>> {
        let type_name = event.type_name();
        let cls = self.classes.get(type_name).ok_or_else(|| {
            PyValueError::new_err(format!("no event class registered for '{type_name}'"))
        })?;
        if event.text_size() <= LARGE_EVENT {
            return cls.bind(py).call_method1(
                pyo3::intern!(py, "model_validate_json"),
                (event.to_json_string(),),
            );
        }
        // The events that close a long message carry its whole text: re-parsing that as JSON costs
        // more than validating Python objects, whose strings pydantic takes as they are.
        let value = super::convert::value_to_py(py, &event.to_json())?;
        cls.bind(py)
            .call_method1(pyo3::intern!(py, "model_validate"), (value,))
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

pub(super) fn generic_setattr(
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
