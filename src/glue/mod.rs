//! PyO3 glue: synchronous methods that move data in and out of the core. No awaiting happens here;
//! the Python driver (`python/responses_rs/_driver.py`) performs every await the core asks for.

mod compaction;
mod construct;
pub(crate) mod convert;
mod events;
mod pyjson;
mod sse;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use serde_json::Value;

use crate::core::events::DeltaKind;
use crate::core::request::RequestOptions;
use crate::core::response::Shape;
use crate::core::surrogates::Carry;
use crate::core::turn::{Action, DirectDelta, Turn, TurnConfig};
use crate::core::CoreError;
use convert::{py_to_value, value_to_py};
use events::{EventFactory, HotState};

pyo3::create_exception!(
    _core,
    DriverProtocolError,
    PyRuntimeError,
    "The driver called the core out of order (a bug in responses-rs, never in the request)."
);
pyo3::create_exception!(
    _core,
    InvalidRequest,
    PyValueError,
    "The request is malformed; the message starts with the field, e.g. `input[2].role: ...`."
);
pyo3::create_exception!(
    _core,
    InternalError,
    PyRuntimeError,
    "A bug inside the Rust core (a panic), turned into an ordinary exception."
);

/// The one mapping from core errors to Python exceptions.
fn to_py_err(err: CoreError) -> PyErr {
    match err {
        CoreError::InvalidInput { .. } => InvalidRequest::new_err(err.to_string()),
        CoreError::NotFound { .. } => PyValueError::new_err(err.to_string()),
        CoreError::Protocol(_) => DriverProtocolError::new_err(err.to_string()),
    }
}

/// Run `f`, turning a Rust panic into `InternalError` so that no panic ever unwinds into Python
/// (pyo3 would raise `PanicException`, a BaseException that `except Exception` does not catch).
fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(InternalError::new_err(format!(
                "internal error in responses-rs: {message}"
            )))
        }
    }
}

/// Read `name` from a dict or an object: chunks and completions come as pydantic objects (llama-stack
/// or openai SDK) or as plain dicts. `None` for a missing or None-valued field.
#[inline]
fn field<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if let Ok(d) = obj.cast::<PyDict>() {
        return Ok(d.get_item(name)?.filter(|v| !v.is_none()));
    }
    // A pydantic model keeps its fields in its instance dict: one dict lookup instead of the full
    // attribute protocol (which, for BaseModel, also passes through its Python-level __getattr__ hook
    // on a miss). Anything not found there takes the ordinary path.
    if let Some(v) = instance_dict_get(obj, name) {
        return Ok(if v.is_none() { None } else { Some(v) });
    }
    match obj.getattr(name) {
        Ok(v) if v.is_none() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(obj.py()) => Ok(None),
        Err(e) => Err(e),
    }
}

extern "C" {
    // CPython's own lookup of an instance's `__dict__` slot (exported by libpython, declared in
    // cpython/object.h; pyo3-ffi leaves private names out). It handles every dict layout, including
    // 3.11's managed dicts, which pydantic models use.
    pub(crate) fn _PyObject_GetDictPtr(
        obj: *mut pyo3::ffi::PyObject,
    ) -> *mut *mut pyo3::ffi::PyObject;
}

/// `obj.__dict__[name]` when the object has an instance dict holding it, without the attribute
/// protocol.
#[inline]
fn instance_dict_get<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> Option<Bound<'py, PyAny>> {
    // SAFETY: `obj` is a live object; `_PyObject_GetDictPtr` returns null or a pointer to its dict
    // slot, which holds null or a dict. The item is borrowed and increfed into a Bound at once.
    unsafe {
        let slot = _PyObject_GetDictPtr(obj.as_ptr());
        if slot.is_null() || (*slot).is_null() {
            return None;
        }
        let item = pyo3::ffi::PyDict_GetItemWithError(*slot, name.as_ptr());
        if item.is_null() {
            pyo3::ffi::PyErr_Clear();
            return None;
        }
        Some(Bound::from_borrowed_ptr(obj.py(), item))
    }
}

fn opt_str<'py>(obj: Option<&Bound<'py, PyAny>>) -> PyResult<Option<Bound<'py, PyString>>> {
    match obj {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => Ok(Some(v.cast::<PyString>()?.clone())),
    }
}

/// Every request option in one object, as the core parses it (and refuses it, naming the field).
fn request_value(
    model: &Bound<'_, PyAny>,
    options: Option<&Bound<'_, PyAny>>,
    store: bool,
    named: [(&str, Option<&Bound<'_, PyAny>>); 3],
    previous_response_id: Option<&str>,
) -> PyResult<Value> {
    let mut request = match options {
        Some(o) if !o.is_none() => convert::py_to_value_at(o, "request")?,
        _ => Value::Object(Default::default()),
    };
    let Value::Object(fields) = &mut request else {
        return Err(PyValueError::new_err("request options must be a dict"));
    };
    fields.insert("model".into(), convert::py_to_value_at(model, "model")?);
    fields.insert("store".into(), Value::Bool(store));
    for (name, value) in named {
        if let Some(v) = value.filter(|v| !v.is_none()) {
            fields.insert(name.into(), convert::py_to_value_at(v, name)?);
        }
    }
    if let Some(id) = previous_response_id {
        fields.insert("previous_response_id".into(), Value::String(id.to_owned()));
    }
    Ok(request)
}

/// Check a request's options and tools without building a turn: the driver calls this before the
/// I/O that must come first (reading the previous response), so a bad field is refused before any I/O.
#[pyfunction]
#[pyo3(signature = (model, tools=None, *, temperature=None, instructions=None, text=None, options=None))]
fn check_request(
    model: &Bound<'_, PyAny>,
    tools: Option<&Bound<'_, PyAny>>,
    temperature: Option<&Bound<'_, PyAny>>,
    instructions: Option<&Bound<'_, PyAny>>,
    text: Option<&Bound<'_, PyAny>>,
    options: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    guarded(|| {
        let named = [
            ("temperature", temperature),
            ("instructions", instructions),
            ("text", text),
        ];
        let request = request_value(model, options, true, named, None)?;
        let opts = RequestOptions::parse(&request).map_err(to_py_err)?;
        if let Some(tools) = tools.filter(|t| !t.is_none()) {
            let tools = crate::core::items::parse_tools(&convert::py_to_value_at(tools, "tools")?)
                .map_err(to_py_err)?;
            opts.tool_choice.check_static(&tools).map_err(to_py_err)?;
        }
        Ok(())
    })
}

/// A tool call's `index` as a key: any integer (negative, or beyond 64 bits through its hash, which
/// for Python ints is exact below 2**61). Not an integer: a clear error naming the field.
fn call_key(index: &Bound<'_, PyAny>) -> PyResult<i64> {
    if let Ok(i) = index.extract::<i64>() {
        return Ok(i);
    }
    if index.cast::<pyo3::types::PyInt>().is_ok() {
        return Ok(index.hash()? as i64);
    }
    Err(PyValueError::new_err(format!(
        "tool_calls[].index: must be an integer, got {}",
        index.get_type().name()?
    )))
}

/// Text from the model as UTF-8. A Python string may hold UTF-16 surrogates (JSON `\ud83d` escapes
/// decode to them): a pair split across two chunks is joined (`carry` holds a trailing high half
/// until the next piece), and a lone one becomes U+FFFD. `None`: the string was valid as it is.
fn model_text(s: &Bound<'_, PyString>, carry: &mut Option<u16>) -> PyResult<Option<String>> {
    if carry.is_none() {
        if s.to_str().is_ok() {
            return Ok(None);
        }
        PyErr::take(s.py());
    }
    let py = s.py();
    let encoded = s.call_method1(pyo3::intern!(py, "encode"), ("utf-16-le", "surrogatepass"))?;
    let bytes = encoded.cast::<pyo3::types::PyBytes>()?.as_bytes();
    let mut units: Vec<u16> = Vec::with_capacity(bytes.len() / 2 + 1);
    units.extend(carry.take());
    units.extend(
        bytes
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]])),
    );
    if let Some(&last) = units.last() {
        if (0xD800..0xDC00).contains(&last) {
            *carry = units.pop();
        }
    }
    Ok(Some(
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect(),
    ))
}

/// One `create_openai_response` call as seen from Python.
#[pyclass(module = "responses_rs._core", name = "Turn")]
pub struct PyTurn {
    turn: Turn,
    factory: Py<EventFactory>,
    hot: HotState,
    /// A high surrogate that ended the last piece of each kind (see `model_text`, and
    /// `core::surrogates` for the bytes of `feed_sse`).
    carry: Carry,
    /// The delta class seen last and what it can carry.
    profile: Option<(Py<pyo3::types::PyType>, DeltaProfile)>,
    /// The SSE framing of an upstream body fed as bytes (`feed_sse`).
    sse: crate::core::sse::SseReader,
    /// How many leading input items came from the previous response (its input, then its output):
    /// the driver says so when it builds the turn, so a host that stores each turn's own input
    /// (OGX's incremental rows) need not read the previous response again to find where it starts.
    history_items: usize,
}

/// Profiles of the delta classes seen so far in this process (a handful: llama-stack's, openai's).
static PROFILES: std::sync::Mutex<Vec<(Py<pyo3::types::PyType>, DeltaProfile)>> =
    std::sync::Mutex::new(Vec::new());

/// What a delta class can carry: read from its pydantic model once per process.
fn class_profile(ty: &Bound<'_, pyo3::types::PyType>) -> PyResult<DeltaProfile> {
    if let Ok(known) = PROFILES.lock() {
        if let Some((_, profile)) = known.iter().find(|(k, _)| k.is(ty)) {
            return Ok(*profile);
        }
    }
    let py = ty.py();
    let profile = match ty.getattr(pyo3::intern!(py, "model_fields")) {
        Ok(fields) => DeltaProfile {
            reasoning_fields: fields.contains("reasoning_content")?
                || fields.contains("reasoning")?,
            extras: ty
                .getattr(pyo3::intern!(py, "model_config"))
                .and_then(|c| c.get_item("extra"))
                .map(|e| e.eq("allow").unwrap_or(false))
                .unwrap_or(false),
        },
        // Not a pydantic model: look everything up.
        Err(_) => DeltaProfile {
            reasoning_fields: true,
            extras: false,
        },
    };
    if let Ok(mut known) = PROFILES.lock() {
        known.push((ty.clone().unbind(), profile));
    }
    Ok(profile)
}

/// The reasoning and refusal pieces of one delta.
struct OtherPieces<'py> {
    reasoning: Option<Bound<'py, PyString>>,
    refusal: Option<Bound<'py, PyString>>,
}

impl<'py> OtherPieces<'py> {
    const NONE: OtherPieces<'py> = OtherPieces {
        reasoning: None,
        refusal: None,
    };

    fn is_empty(&self) -> bool {
        self.reasoning.is_none() && self.refusal.is_none()
    }

    fn iter(&self) -> impl Iterator<Item = (DeltaKind, &Bound<'py, PyString>)> {
        let reasoning = self.reasoning.iter().map(|s| (DeltaKind::ReasoningText, s));
        reasoning.chain(self.refusal.iter().map(|s| (DeltaKind::Refusal, s)))
    }
}

#[derive(Debug, Clone, Copy)]
struct DeltaProfile {
    reasoning_fields: bool,
    extras: bool,
}

impl PyTurn {
    /// Feed one tool-call delta object (`index`, `id`, `function.name`, `function.arguments`); a
    /// complete message's calls are told apart `by_position`. Returns the call's arguments string,
    /// which the delta event it causes may reuse.
    fn feed_tool_call<'py>(
        &mut self,
        position: usize,
        tc: &Bound<'py, PyAny>,
        by_position: bool,
        direct: bool,
    ) -> PyResult<(Option<Bound<'py, PyString>>, Option<DirectDelta>)> {
        let py = tc.py();
        let index = match by_position {
            true => position as i64,
            false => match field(tc, pyo3::intern!(py, "index"))? {
                Some(i) => call_key(&i)?,
                None => position as i64,
            },
        };
        let id = opt_str(field(tc, pyo3::intern!(py, "id"))?.as_ref())?;
        let function = field(tc, pyo3::intern!(py, "function"))?;
        let (name, arguments) = match &function {
            Some(f) => (
                opt_str(field(f, pyo3::intern!(py, "name"))?.as_ref())?,
                opt_str(field(f, pyo3::intern!(py, "arguments"))?.as_ref())?,
            ),
            None => (None, None),
        };
        let (id, name) = (
            id.as_ref().map(|s| s.to_str()).transpose()?,
            name.as_ref().map(|s| s.to_str()).transpose()?,
        );
        // Arguments holding a surrogate (or while a call holds half a pair) are joined per call;
        // the common piece is read once, as it is.
        let plain = match &arguments {
            Some(a) if !self.carry.holds_calls() => match a.to_str() {
                Ok(s) => Some(s),
                Err(_) => {
                    PyErr::take(py);
                    None
                }
            },
            _ => None,
        };
        let fixed = match (&arguments, plain) {
            (Some(a), None) => self.call_arguments(index, a)?,
            _ => None,
        };
        // Fixed arguments are not the string given: no direct delta reusing it.
        let direct = direct && fixed.is_none();
        let piece = match (&fixed, plain) {
            (Some(f), _) => Some(f.as_str()),
            (None, Some(s)) => Some(s),
            // Valid as it is (a call holds half a pair, not this one), or no arguments.
            (None, None) => arguments.as_ref().map(|s| s.to_str()).transpose()?,
        };
        let delta = if direct {
            self.turn.tool_call_delta_direct(index, id, name, piece)
        } else {
            self.turn
                .tool_call_delta(index, id, name, piece)
                .map(|()| None)
        };
        let arguments = if fixed.is_some() { None } else { arguments };
        Ok((arguments, delta.map_err(to_py_err)?))
    }

    /// A piece of call `index`'s arguments through its held half (see `model_text`); `None`: valid
    /// as it is.
    fn call_arguments(
        &mut self,
        index: i64,
        arguments: &Bound<'_, PyString>,
    ) -> PyResult<Option<String>> {
        let mut held = self.carry.take_call(index);
        let fixed = model_text(arguments, &mut held)?;
        if let Some(high) = held {
            self.carry.hold_call(index, high);
        }
        Ok(fixed)
    }

    /// Feed one piece of model text of `kind`; true when it went in as the very string given (so a
    /// delta event may reuse the object).
    fn piece(&mut self, kind: DeltaKind, text: &Bound<'_, PyString>) -> PyResult<bool> {
        let carry = self.carry.slot_mut(kind);
        match model_text(text, carry)? {
            None => {
                self.turn.piece(kind, text.to_str()?).map_err(to_py_err)?;
                Ok(true)
            }
            Some(fixed) => {
                self.turn.piece(kind, &fixed).map_err(to_py_err)?;
                Ok(false)
            }
        }
    }

    /// The reasoning (`reasoning_content` or `reasoning`) and refusal pieces of a delta or message,
    /// read without the attribute protocol: on openai SDK objects the reasoning fields are extras.
    /// Per chunk this is three dict lookups and, on a pydantic object, one read of its extras.
    /// `with_refusal: false` skips the refusal (a chunk carrying text carries no refusal: OpenAI
    /// sends one or the other), a lookup less per text chunk. For a class that declares no reasoning
    /// field and keeps no extras (llama-stack's own chunks), a text chunk costs no lookup at all.
    fn other_pieces<'py>(
        &mut self,
        delta: &Bound<'py, PyAny>,
        with_refusal: bool,
    ) -> PyResult<OtherPieces<'py>> {
        let py = delta.py();
        let names = [
            pyo3::intern!(py, "reasoning_content"),
            pyo3::intern!(py, "reasoning"),
            pyo3::intern!(py, "refusal"),
        ];
        let mut found: [Option<Bound<'py, PyAny>>; 3] = [None, None, None];
        if let Ok(d) = delta.cast::<PyDict>() {
            for (slot, name) in found.iter_mut().zip(names) {
                *slot = d.get_item(name)?;
            }
        } else {
            let profile = self.delta_profile(delta)?;
            if profile.reasoning_fields {
                found[0] = instance_dict_get(delta, names[0]);
                found[1] = instance_dict_get(delta, names[1]);
            }
            if with_refusal {
                found[2] = instance_dict_get(delta, names[2]);
            }
            if profile.extras && found[0].is_none() && found[1].is_none() {
                if let Ok(extra) = delta.getattr(pyo3::intern!(py, "__pydantic_extra__")) {
                    if let Ok(extra) = extra.cast::<PyDict>() {
                        if !extra.is_empty() {
                            found[0] = extra.get_item(names[0])?;
                            found[1] = extra.get_item(names[1])?;
                        }
                    }
                }
            }
        }
        let text = |v: &Option<Bound<'py, PyAny>>| {
            v.as_ref()
                .and_then(|v| v.cast::<PyString>().ok().cloned())
                .filter(|s| s.is_empty().map(|e| !e).unwrap_or(false))
        };
        Ok(OtherPieces {
            reasoning: text(&found[0]).or_else(|| text(&found[1])),
            refusal: text(&found[2]),
        })
    }

    /// The delta is of the class seen last, and that class can carry no reasoning: the per-chunk
    /// check, a pointer comparison.
    #[inline]
    fn carries_no_reasoning(&self, delta: &Bound<'_, PyAny>) -> bool {
        match &self.profile {
            // SAFETY: `delta` is a live object; Py_TYPE only reads its header.
            Some((ty, profile)) => {
                !profile.reasoning_fields
                    && !profile.extras
                    && unsafe { pyo3::ffi::Py_TYPE(delta.as_ptr()) } as *mut pyo3::ffi::PyObject
                        == ty.as_ptr()
            }
            None => false,
        }
    }

    /// What a delta class can carry, read once per class: whether it declares a reasoning field
    /// (else the lookups are skipped) and whether it keeps extra fields (openai SDK objects do).
    fn delta_profile(&mut self, delta: &Bound<'_, PyAny>) -> PyResult<DeltaProfile> {
        let ty = delta.get_type();
        if let Some((known, profile)) = &self.profile {
            if known.is(&ty) {
                return Ok(*profile);
            }
        }
        let profile = class_profile(&ty)?;
        self.profile = Some((ty.unbind(), profile));
        Ok(profile)
    }

    fn finish_reason(&mut self, reason: &Bound<'_, PyAny>) -> PyResult<()> {
        // A plain string, or an enum member whose value is one.
        let reason = match reason.cast::<PyString>() {
            Ok(s) => s.to_str()?.to_owned(),
            Err(_) => reason
                .str()?
                .to_str()?
                .rsplit('.')
                .next()
                .unwrap_or("")
                .to_owned(),
        };
        self.turn.finish_reason(&reason).map_err(to_py_err)
    }

    /// The chunk or completion's `usage`, when it has one.
    fn read_usage(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = obj.py();
        let name = pyo3::intern!(py, "usage");
        // Not `field`: on a pydantic class without the field (llama-stack's completion), the attribute
        // protocol ends in pydantic's `__getattr__` raising, which costs more than the whole request's
        // bookkeeping. A declared field is in the instance dict, an extra one in the extras.
        let usage = match obj.cast::<PyDict>() {
            Ok(d) => d.get_item(name)?,
            Err(_) => instance_dict_get(obj, name).or_else(|| {
                obj.getattr(pyo3::intern!(py, "__pydantic_extra__"))
                    .ok()
                    .and_then(|e| {
                        e.cast::<PyDict>()
                            .ok()
                            .and_then(|e| e.get_item(name).ok().flatten())
                    })
            }),
        };
        if let Some(usage) = usage.filter(|u| !u.is_none()) {
            self.turn.usage(&py_to_value(&usage)?);
        }
        Ok(())
    }

    /// After a chunk's pieces: its finish reason and usage (the last chunk carries them), then the
    /// queued events.
    fn finish_chunk<'py>(
        &mut self,
        py: Python<'py>,
        chunk: &Bound<'py, PyAny>,
        finish: Option<Bound<'py, PyAny>>,
        reuse: Option<&Bound<'py, PyString>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(reason) = finish {
            self.finish_reason(&reason)?;
            self.read_usage(chunk)?;
        }
        self.take_events(py, reuse)
    }

    /// Turn the queued events into Python objects. `text` is the chunk's own content string: the
    /// text delta it caused reuses that object instead of building a copy.
    fn take_events<'py>(
        &mut self,
        py: Python<'py>,
        text: Option<&Bound<'py, PyString>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let factory = self.factory.bind(py).borrow();
        match self.turn.pending_events() {
            0 => Ok(py.None().into_bound(py)),
            1 => match self.turn.pop_event() {
                Some(event) => factory.build(py, &event, text, &mut self.hot),
                None => Ok(py.None().into_bound(py)),
            },
            _ => {
                drop(factory);
                Ok(self.queued_events(py, text)?.into_any())
            }
        }
    }

    /// Every queued event, built, as a list.
    fn queued_events<'py>(
        &mut self,
        py: Python<'py>,
        text: Option<&Bound<'py, PyString>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let factory = self.factory.bind(py).borrow();
        let list = PyList::empty(py);
        while let Some(event) = self.turn.pop_event() {
            list.append(factory.build(py, &event, text, &mut self.hot)?)?;
        }
        Ok(list)
    }
}

#[pymethods]
impl PyTurn {
    #[new]
    #[pyo3(signature = (factory, model, input, tools=None, *, temperature=None, emit_events=false, store=true,
        instructions=None, text=None, previous_response_id=None, max_rounds=10, stream_inference=false,
        send_response_format=false, extended_tools=true, options=None, record_shape="llama-stack-0.2.12",
        split_think=false, file_search_citations=false, history_items=0, developer_role="developer",
        compaction_trigger=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        factory: Py<EventFactory>,
        model: &Bound<'_, PyAny>,
        input: &Bound<'_, PyAny>,
        tools: Option<&Bound<'_, PyAny>>,
        temperature: Option<&Bound<'_, PyAny>>,
        emit_events: bool,
        store: bool,
        instructions: Option<&Bound<'_, PyAny>>,
        text: Option<&Bound<'_, PyAny>>,
        previous_response_id: Option<String>,
        max_rounds: u32,
        stream_inference: bool,
        send_response_format: bool,
        extended_tools: bool,
        options: Option<&Bound<'_, PyAny>>,
        record_shape: &str,
        split_think: bool,
        file_search_citations: bool,
        history_items: usize,
        developer_role: &str,
        compaction_trigger: bool,
    ) -> PyResult<Self> {
        guarded(|| {
            let input = convert::py_to_value_at(input, "input")?;
            let tools = match tools {
                Some(t) => convert::py_to_value_at(t, "tools")?,
                None => Value::Null,
            };
            let request = request_value(
                model,
                options,
                store,
                [
                    ("temperature", temperature),
                    ("instructions", instructions),
                    ("text", text),
                ],
                previous_response_id.as_deref(),
            )?;
            let opts = RequestOptions::parse(&request).map_err(to_py_err)?;
            let record_shape = match record_shape {
                "llama-stack-0.2.7" => Shape::LlamaStack027,
                "llama-stack-0.2.12" => Shape::LlamaStack0212,
                "full" => Shape::Full,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "record_shape: unknown shape '{other}'"
                    )))
                }
            };
            let developer_as_system = match developer_role {
                "developer" => false,
                "system" => true,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "developer_role: unknown role '{other}' (expected developer or system)"
                    )))
                }
            };
            let cfg = TurnConfig {
                developer_as_system,
                compaction_trigger,
                emit_events,
                max_rounds: max_rounds.max(1),
                stream_inference,
                send_response_format,
                extended_tools,
                split_think,
                file_search_citations,
                options: opts,
                record_shape,
            };
            let turn = Turn::new(cfg, &input, &tools).map_err(to_py_err)?;
            Ok(PyTurn {
                turn,
                factory,
                hot: HotState::default(),
                carry: Carry::default(),
                profile: None,
                sse: crate::core::sse::SseReader::new(),
                history_items,
            })
        })
    }

    #[getter]
    fn response_id(&self) -> &str {
        self.turn.response_id()
    }

    /// The input ended with a `compaction_trigger` item: the turn compacts the history instead of answering.
    #[getter]
    fn compacting(&self) -> bool {
        self.turn.compacting()
    }

    /// The leading input items that came from the previous response (given when the turn was built).
    #[getter]
    fn history_items(&self) -> usize {
        self.history_items
    }

    /// What to do next, as a tuple whose first element names the action.
    fn next_action<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        guarded(|| {
            let action = self.turn.next_action().map_err(to_py_err)?;
            let opt = |v: &Option<Value>| -> PyResult<Bound<'py, PyAny>> {
                match v {
                    Some(v) => value_to_py(py, v),
                    None => Ok(py.None().into_bound(py)),
                }
            };
            Ok(match action {
                Action::GetToolDef { name } => PyTuple::new(
                    py,
                    [
                        pyo3::intern!(py, "get_tool").clone().into_any(),
                        PyString::new(py, &name).into_any(),
                    ],
                )?,
                Action::ListMcpTools {
                    server_label,
                    server_url,
                    headers,
                } => (
                    pyo3::intern!(py, "list_mcp_tools"),
                    server_label,
                    server_url,
                    opt(&headers)?,
                )
                    .into_pyobject(py)?,
                Action::Infer {
                    messages,
                    tools,
                    stream,
                    response_format,
                    params,
                } => (
                    pyo3::intern!(py, "infer"),
                    messages,
                    tools,
                    stream,
                    opt(&response_format)?,
                    value_to_py(py, &params)?,
                )
                    .into_pyobject(py)?,
                Action::InvokeTool {
                    name,
                    arguments,
                    search_options,
                } => (
                    pyo3::intern!(py, "invoke_tool"),
                    name,
                    value_to_py(py, &arguments)?,
                    opt(&search_options)?,
                )
                    .into_pyobject(py)?,
                Action::InvokeMcp {
                    server_url,
                    headers,
                    name,
                    arguments,
                } => (
                    pyo3::intern!(py, "invoke_mcp"),
                    server_url,
                    opt(&headers)?,
                    name,
                    value_to_py(py, &arguments)?,
                )
                    .into_pyobject(py)?,
                Action::FileSearch {
                    query,
                    vector_store_ids,
                    filters,
                    max_num_results,
                    ranking_options,
                } => (
                    pyo3::intern!(py, "file_search"),
                    query,
                    vector_store_ids,
                    opt(&filters)?,
                    max_num_results,
                    opt(&ranking_options)?,
                )
                    .into_pyobject(py)?,
                Action::Store { response, input } => {
                    (pyo3::intern!(py, "store"), response, input).into_pyobject(py)?
                }
                Action::Done => PyTuple::new(py, [pyo3::intern!(py, "done")])?,
            })
        })
    }

    fn provide_tool_def(&mut self, tooldef: &Bound<'_, PyAny>) -> PyResult<()> {
        guarded(|| {
            self.turn
                .provide_tool_def(&py_to_value(tooldef)?)
                .map_err(to_py_err)
        })
    }

    fn provide_mcp_tools(&mut self, listing: &Bound<'_, PyAny>) -> PyResult<()> {
        guarded(|| {
            self.turn
                .provide_mcp_tools(&py_to_value(listing)?)
                .map_err(to_py_err)
        })
    }

    /// One streamed chat chunk. Returns `None` (no event), one event, or a list when the chunk caused
    /// several (the first text opens an item and a content part). This is the per-chunk hot path.
    fn feed<'py>(&mut self, chunk: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        guarded(|| {
            let py = chunk.py();
            let choice = match field(chunk, pyo3::intern!(py, "choices"))? {
                Some(choices) => match choices.cast::<PyList>() {
                    Ok(list) if list.is_empty() => None,
                    Ok(list) => Some(list.get_item(0)?),
                    Err(_) => choices.get_item(0).ok(),
                },
                None => None,
            };
            let Some(choice) = choice else {
                // The usage chunk (`stream_options.include_usage`) has no choices.
                self.read_usage(chunk)?;
                return self.take_events(py, None);
            };
            let finish = field(&choice, pyo3::intern!(py, "finish_reason"))?;
            let Some(delta) = field(&choice, pyo3::intern!(py, "delta"))? else {
                return self.finish_chunk(py, chunk, finish, None);
            };
            let content = opt_str(field(&delta, pyo3::intern!(py, "content"))?.as_ref())?;
            let tool_calls = field(&delta, pyo3::intern!(py, "tool_calls"))?;
            let calls = match &tool_calls {
                Some(t) => t.cast::<PyList>().ok().map(|l| l.len()),
                None => Some(0),
            };
            // A chunk with text in it carries no refusal (its length, without a conversion).
            // SAFETY: `t` is a live str object; PyUnicode_GetLength only reads its header.
            let with_refusal = content
                .as_ref()
                .is_none_or(|t| unsafe { pyo3::ffi::PyUnicode_GetLength(t.as_ptr()) } == 0);
            let others = if !with_refusal && self.carries_no_reasoning(&delta) {
                OtherPieces::NONE
            } else {
                self.other_pieces(&delta, with_refusal)?
            };
            // The common chunks — a piece of text, or a piece of one call's arguments — take the
            // direct path: the core hands back the delta instead of queueing it.
            if let (Some(text), Some(0), None, true) = (&content, calls, &finish, others.is_empty())
            {
                if self.carry.0[0].is_none() {
                    if let Ok(piece) = text.to_str() {
                        if let Some(d) = self.turn.text_delta_direct(piece).map_err(to_py_err)? {
                            let factory = self.factory.bind(py).borrow();
                            return factory.build_direct(py, &d, text.clone(), &mut self.hot);
                        }
                        return self.take_events(py, Some(text));
                    }
                    PyErr::take(py);
                }
            }
            for (kind, piece) in others.iter() {
                self.piece(kind, piece)?;
            }
            let mut reuse = None;
            if let Some(text) = &content {
                if self.piece(DeltaKind::OutputText, text)? {
                    reuse = Some(text.clone());
                }
            }
            if let Some(tool_calls) = tool_calls {
                if let Ok(list) = tool_calls.cast::<PyList>() {
                    let direct =
                        reuse.is_none() && others.is_empty() && finish.is_none() && list.len() == 1;
                    for (position, tc) in list.iter().enumerate() {
                        let (arguments, delta) =
                            self.feed_tool_call(position, &tc, false, direct)?;
                        if let (Some(d), Some(piece)) = (delta, &arguments) {
                            let factory = self.factory.bind(py).borrow();
                            return factory.build_direct(py, &d, piece.clone(), &mut self.hot);
                        }
                        if reuse.is_none() {
                            reuse = arguments;
                        }
                    }
                } else {
                    for (position, tc) in tool_calls.try_iter()?.enumerate() {
                        self.feed_tool_call(position, &tc?, false, false)?;
                    }
                }
            }
            self.finish_chunk(py, chunk, finish, reuse.as_ref())
        })
    }

    /// A complete (not streamed) chat completion: its first choice's message, fed as one delta.
    fn feed_completion(&mut self, completion: &Bound<'_, PyAny>) -> PyResult<()> {
        guarded(|| {
            let py = completion.py();
            let choices = field(completion, pyo3::intern!(py, "choices"))?;
            let Some(choice) = choices.map(|c| c.get_item(0)).transpose().ok().flatten() else {
                return Ok(());
            };
            self.read_usage(completion)?;
            let Some(message) = field(&choice, pyo3::intern!(py, "message"))? else {
                return Ok(());
            };
            let others = self.other_pieces(&message, true)?;
            for (kind, piece) in others.iter() {
                self.piece(kind, piece)?;
            }
            if let Some(content) = field(&message, pyo3::intern!(py, "content"))? {
                if let Ok(text) = content.cast::<PyString>() {
                    self.piece(DeltaKind::OutputText, text)?;
                } else {
                    // A list of content parts: their text, in order.
                    for part in content.try_iter()? {
                        let part = part?;
                        if let Some(text) =
                            opt_str(field(&part, pyo3::intern!(py, "text"))?.as_ref())?
                        {
                            self.turn.text_delta(text.to_str()?).map_err(to_py_err)?;
                        }
                    }
                }
            }
            if let Some(tool_calls) = field(&message, pyo3::intern!(py, "tool_calls"))? {
                for (position, tc) in tool_calls.try_iter()?.enumerate() {
                    // A complete message's calls may all carry index 0 (llama-stack sets it so):
                    // their position is what tells them apart.
                    self.feed_tool_call(position, &tc?, true, false)?;
                }
            }
            if let Some(reason) = field(&choice, pyo3::intern!(py, "finish_reason"))? {
                self.finish_reason(&reason)?;
            }
            Ok(())
        })
    }

    /// The inference stream or completion is over; the items it opened are closed (see `drain`).
    fn end_inference(&mut self) -> PyResult<()> {
        guarded(|| {
            // The next round's inference is a new SSE body (`feed_sse`): its reader starts afresh (the
            // last one saw `[DONE]` and would ignore the rest).
            self.sse = crate::core::sse::SseReader::new();
            // Half a surrogate pair that never got its other half.
            crate::core::chunk::end_carry(&mut self.turn, &mut self.carry).map_err(to_py_err)?;
            self.turn.end_inference().map_err(to_py_err)
        })
    }

    /// A tool lookup or call raised: only that tool fails (see the core's `Turn::tool_failed`).
    fn tool_failed(&mut self, message: &str) -> PyResult<()> {
        guarded(|| self.turn.tool_failed(message).map_err(to_py_err))
    }

    /// Warnings for the driver's log, each once (a tool left out because the host cannot serve it).
    fn take_warnings(&mut self) -> Vec<String> {
        self.turn.take_warnings()
    }

    fn tool_result(&mut self, result: &Bound<'_, PyAny>) -> PyResult<()> {
        guarded(|| {
            self.turn
                .tool_result(&py_to_value(result)?)
                .map_err(to_py_err)
        })
    }

    fn stored(&mut self) -> PyResult<()> {
        guarded(|| self.turn.stored().map_err(to_py_err))
    }

    /// Inference refused the call for a too long context: drop the oldest turn and call again.
    /// True: the next action is that call; False: the turn failed (`context_length_exceeded`);
    /// None: the call had already produced output and cannot be made again.
    fn truncate_and_retry(&mut self) -> PyResult<Option<bool>> {
        guarded(|| {
            Ok(match self.turn.truncate_and_retry() {
                Ok(retry) => Some(retry),
                Err(CoreError::Protocol(_)) => None,
                Err(other) => return Err(to_py_err(other)),
            })
        })
    }

    /// End the turn as failed (inference or the store raised mid-stream); closes open items.
    #[pyo3(signature = (message, code="server_error"))]
    fn fail(&mut self, message: &str, code: &str) -> PyResult<()> {
        guarded(|| {
            self.turn.fail_with(code, message);
            Ok(())
        })
    }

    /// Earlier conversation items (a list of item dicts), sent before the new input and not stored
    /// as this response's input. Only before the first `next_action`.
    fn prepend_history(&mut self, history: &Bound<'_, PyAny>) -> PyResult<()> {
        guarded(|| {
            let history = convert::py_to_value_at(history, "conversation")?;
            self.turn.prepend_history(&history).map_err(to_py_err)
        })
    }

    /// A stored prompt template, rendered with the request's `prompt.variables` (each one of
    /// `declared`), as the first system message. Only before the first `next_action`.
    fn apply_prompt(&mut self, template: &str, declared: Vec<String>) -> PyResult<()> {
        guarded(|| {
            self.turn
                .apply_prompt(template, &declared)
                .map_err(to_py_err)
        })
    }

    /// A host's system message at index `at` of the chat messages, or (None) after the leading
    /// system and developer messages; sent on every inference call, never stored.
    #[pyo3(signature = (text, at=None))]
    fn insert_system(&mut self, text: &str, at: Option<usize>) -> PyResult<()> {
        guarded(|| self.turn.insert_system(text, at).map_err(to_py_err))
    }

    /// A host's own field of the response object (in the response, its events and its record).
    fn echo_field(&mut self, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        guarded(|| {
            let value = convert::py_to_value_at(value, name)?;
            self.turn.echo_field(name, value).map_err(to_py_err)
        })
    }

    /// A guardrail flagged the input or this round's output: drop the round, complete with a refusal.
    fn refuse(&mut self, message: &str) -> PyResult<()> {
        self.carry = Carry::default();
        guarded(|| self.turn.refuse(message).map_err(to_py_err))
    }

    /// The chat messages so far, without system messages, as JSON.
    fn chat_history(&self) -> PyResult<String> {
        guarded(|| self.turn.chat_history().map_err(to_py_err))
    }

    /// A piece of the upstream's Chat Completions SSE body (de-chunked bytes, split anywhere): every
    /// complete chunk in it goes into the turn, and the events they caused come back as the client's SSE
    /// bytes (`event: TYPE\ndata: JSON\n\n` each; empty when none). No Python object per chunk.
    /// Raises `UpstreamError` for a body that is not a chat stream (the caller then `fail`s the turn).
    fn feed_sse<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        guarded(|| {
            crate::core::chunk::feed_sse(&mut self.sse, &mut self.turn, &mut self.carry, data)
                .map_err(|e| sse::UpstreamError::new_err(e.0))?;
            self.drain_sse(py)
        })
    }

    /// `data: [DONE]` was read from the upstream body.
    #[getter]
    fn sse_done(&self) -> bool {
        self.sse.done()
    }

    /// Every event queued since the last call, as SSE bytes (see `feed_sse`).
    fn drain_sse<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        guarded(|| {
            let mut out = Vec::new();
            while let Some(event) = self.turn.pop_event() {
                crate::core::sse::write_event(&event, &mut out);
            }
            Ok(pyo3::types::PyBytes::new(py, &out))
        })
    }

    /// Every event queued since the last call, as a list.
    fn drain<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        guarded(|| self.queued_events(py, None))
    }

    /// The response as it stands (OpenAI's full shape) with `status` `queued`, `in_progress` or
    /// `cancelled`: a background response before it ends, or cancelled.
    fn snapshot_json(&self, status: &str) -> PyResult<String> {
        guarded(|| {
            self.turn.snapshot_json(status).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "status: '{status}' is not queued, in_progress or cancelled"
                ))
            })
        })
    }

    /// The input the record stores (JSON), as the final `store` action gives it (a background
    /// response's `queued` row is written before it ends).
    fn stored_input_json(&self) -> PyResult<String> {
        guarded(|| self.turn.stored_input_json().map_err(to_py_err))
    }

    /// The finished response as JSON (llama-stack's `OpenAIResponseObject` shape).
    fn response_json(&self) -> PyResult<String> {
        guarded(|| {
            let response = self.turn.final_response().ok_or_else(|| {
                DriverProtocolError::new_err("the turn has no final response yet")
            })?;
            Ok(response.to_json(Shape::Full))
        })
    }
}

/// The response object (OpenAI's full shape, JSON) of a request refused before anything started:
/// `failed`, with the error code and message, echoing the model and previous response id.
#[pyfunction]
#[pyo3(signature = (model, code, message, previous_response_id=None))]
fn rejected_response(
    model: &str,
    code: &str,
    message: &str,
    previous_response_id: Option<String>,
) -> PyResult<String> {
    guarded(|| {
        let mut response = crate::core::response::Response::minimal(
            crate::core::ids::new_id("resp-"),
            crate::core::ids::now_unix(),
            model.to_owned(),
        );
        response.previous_response_id = previous_response_id;
        response.fail(code, message);
        Ok(response.to_json(Shape::Full))
    })
}

/// A vector store search's scoring: the `k` rows of `matrix` (rows of `dim` little-endian float32)
/// nearest `query` (`dim` little-endian float32) by cosine similarity, scoring at least
/// `min_score`, as `(row, score)` best first.
#[pyfunction]
fn top_k_cosine(
    query: &[u8],
    matrix: &[u8],
    dim: usize,
    k: usize,
    min_score: f32,
) -> PyResult<Vec<(usize, f32)>> {
    guarded(|| {
        let query = crate::core::vectors::f32_from_le_bytes(query);
        crate::core::vectors::top_k_cosine(&query, matrix, dim, k, min_score).ok_or_else(|| {
            PyValueError::new_err(format!(
                "top_k_cosine: a query of {} values and a matrix of {} bytes are not rows of {dim} float32",
                query.len(),
                matrix.len()
            ))
        })
    })
}

/// Deliberately panic inside Rust: the tests use it to prove a panic surfaces as `InternalError`.
#[pyfunction]
fn _panic_for_tests(message: &str) -> PyResult<()> {
    guarded(|| panic!("{message}"))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyTurn>()?;
    m.add_class::<EventFactory>()?;
    m.add_class::<construct::Constructor>()?;
    sse::register(m)?;
    m.add_class::<compaction::PyCompaction>()?;
    m.add_function(wrap_pyfunction!(compaction::is_context_length_error, m)?)?;
    m.add_function(wrap_pyfunction!(compaction::compaction_text_segments, m)?)?;
    m.add("COMPACTION_PROMPT", crate::core::compaction::SUMMARY_PROMPT)?;
    m.add(
        "COMPACTION_SUMMARY_PREFIX",
        crate::core::compaction::SUMMARY_PREFIX,
    )?;
    m.add("DriverProtocolError", py.get_type::<DriverProtocolError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    m.add("InvalidRequest", py.get_type::<InvalidRequest>())?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(rejected_response, m)?)?;
    m.add_function(wrap_pyfunction!(check_request, m)?)?;
    m.add_function(wrap_pyfunction!(top_k_cosine, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
