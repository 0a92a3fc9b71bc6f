//! PyO3 glue: synchronous methods that move data in and out of the core. No awaiting happens here;
//! the Python driver (`python/responses_rs/_driver.py`) performs every await the core asks for.

pub(crate) mod convert;
mod events;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use serde_json::Value;

use crate::core::response::Shape;
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
    InternalError,
    PyRuntimeError,
    "A bug inside the Rust core (a panic), turned into an ordinary exception."
);

/// The one mapping from core errors to Python exceptions.
fn to_py_err(err: CoreError) -> PyErr {
    match err {
        CoreError::InvalidInput { .. } | CoreError::NotFound { .. } => {
            PyValueError::new_err(err.to_string())
        }
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

/// One `create_openai_response` call as seen from Python.
#[pyclass(module = "responses_rs._core", name = "Turn")]
pub struct PyTurn {
    turn: Turn,
    factory: Py<EventFactory>,
    hot: HotState,
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
            true => position as u32,
            false => match field(tc, pyo3::intern!(py, "index"))? {
                Some(i) => i.extract::<u32>()?,
                None => position as u32,
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
        let piece = arguments.as_ref().map(|s| s.to_str()).transpose()?;
        let delta = if direct {
            self.turn.tool_call_delta_direct(index, id, name, piece)
        } else {
            self.turn
                .tool_call_delta(index, id, name, piece)
                .map(|()| None)
        };
        Ok((arguments, delta.map_err(to_py_err)?))
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
        send_response_format=false, extended_tools=true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        factory: Py<EventFactory>,
        model: String,
        input: &Bound<'_, PyAny>,
        tools: Option<&Bound<'_, PyAny>>,
        temperature: Option<f64>,
        emit_events: bool,
        store: bool,
        instructions: Option<String>,
        text: Option<&Bound<'_, PyAny>>,
        previous_response_id: Option<String>,
        max_rounds: u32,
        stream_inference: bool,
        send_response_format: bool,
        extended_tools: bool,
    ) -> PyResult<Self> {
        guarded(|| {
            let input = py_to_value(input)?;
            let tools = match tools {
                Some(t) => py_to_value(t)?,
                None => Value::Null,
            };
            let text = match text {
                Some(t) if !t.is_none() => Some(py_to_value(t)?),
                _ => None,
            };
            let cfg = TurnConfig {
                model,
                temperature,
                emit_events,
                store,
                instructions,
                text,
                previous_response_id,
                max_rounds: max_rounds.max(1),
                stream_inference,
                send_response_format,
                extended_tools,
            };
            let turn = Turn::new(cfg, &input, &tools).map_err(to_py_err)?;
            Ok(PyTurn {
                turn,
                factory,
                hot: HotState::default(),
            })
        })
    }

    #[getter]
    fn response_id(&self) -> &str {
        self.turn.response_id()
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
                } => (
                    pyo3::intern!(py, "infer"),
                    messages,
                    tools,
                    stream,
                    opt(&response_format)?,
                )
                    .into_pyobject(py)?,
                Action::InvokeTool { name, arguments } => (
                    pyo3::intern!(py, "invoke_tool"),
                    name,
                    value_to_py(py, &arguments)?,
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
            let Some(choices) = field(chunk, pyo3::intern!(py, "choices"))? else {
                return Ok(py.None().into_bound(py));
            };
            let choice = match choices.cast::<PyList>() {
                Ok(list) if list.is_empty() => return Ok(py.None().into_bound(py)),
                Ok(list) => list.get_item(0)?,
                Err(_) => match choices.get_item(0) {
                    Ok(c) => c,
                    Err(_) => return Ok(py.None().into_bound(py)),
                },
            };
            let Some(delta) = field(&choice, pyo3::intern!(py, "delta"))? else {
                return Ok(py.None().into_bound(py));
            };
            let content = opt_str(field(&delta, pyo3::intern!(py, "content"))?.as_ref())?;
            let tool_calls = field(&delta, pyo3::intern!(py, "tool_calls"))?;
            let calls = match &tool_calls {
                Some(t) => t.cast::<PyList>().ok().map(|l| l.len()),
                None => Some(0),
            };
            // The common chunks — a piece of text, or a piece of one call's arguments — take the
            // direct path: the core hands back the delta instead of queueing it.
            if let (Some(text), Some(0)) = (&content, calls) {
                let piece = text.to_str()?;
                if let Some(d) = self.turn.text_delta_direct(piece).map_err(to_py_err)? {
                    let factory = self.factory.bind(py).borrow();
                    return factory.build_direct(py, &d, text.clone(), &mut self.hot);
                }
                return self.take_events(py, Some(text));
            }
            if let Some(text) = &content {
                self.turn.text_delta(text.to_str()?).map_err(to_py_err)?;
            }
            let mut reuse = content;
            if let Some(tool_calls) = tool_calls {
                if let Ok(list) = tool_calls.cast::<PyList>() {
                    let direct = reuse.is_none() && list.len() == 1;
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
            self.take_events(py, reuse.as_ref())
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
            let Some(message) = field(&choice, pyo3::intern!(py, "message"))? else {
                return Ok(());
            };
            if let Some(content) = field(&message, pyo3::intern!(py, "content"))? {
                if let Ok(text) = content.cast::<PyString>() {
                    self.turn.text_delta(text.to_str()?).map_err(to_py_err)?;
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
            Ok(())
        })
    }

    /// The inference stream or completion is over; the items it opened are closed (see `drain`).
    fn end_inference(&mut self) -> PyResult<()> {
        guarded(|| self.turn.end_inference().map_err(to_py_err))
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

    /// End the turn as failed (a collaborator raised mid-stream); closes open items.
    fn fail(&mut self, message: &str) -> PyResult<()> {
        guarded(|| {
            self.turn.fail(message);
            Ok(())
        })
    }

    /// Every event queued since the last call, as a list.
    fn drain<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        guarded(|| self.queued_events(py, None))
    }

    /// The finished response as JSON (llama-stack's `OpenAIResponseObject` shape).
    fn response_json(&self) -> PyResult<String> {
        guarded(|| {
            let response = self.turn.final_response().ok_or_else(|| {
                DriverProtocolError::new_err("the turn has no final response yet")
            })?;
            Ok(response.to_json(Shape::LlamaStack0212))
        })
    }
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
    m.add("DriverProtocolError", py.get_type::<DriverProtocolError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
