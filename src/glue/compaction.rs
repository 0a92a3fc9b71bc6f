//! The glue of compaction and truncation (`core::compaction`, `core::truncation`): the `Compaction`
//! class, the check of an inference error's body, and the texts counted for `context_management`.

use pyo3::prelude::*;
use serde_json::Value;

use super::convert::{py_to_value, py_to_value_at};
use super::{guarded, to_py_err, DriverProtocolError};
use crate::core::compaction::{self, Compacted};
use crate::core::{items, truncation};

/// One compaction: built from the history, fed the summarization call's completion once.
#[pyclass(module = "responses_rs._core", name = "Compaction")]
pub struct PyCompaction {
    compaction: compaction::Compaction,
    done: Option<Compacted>,
}

impl PyCompaction {
    fn done(&self) -> PyResult<&Compacted> {
        self.done
            .as_ref()
            .ok_or_else(|| DriverProtocolError::new_err("the compaction is not finished yet"))
    }
}

#[pymethods]
impl PyCompaction {
    #[new]
    #[pyo3(signature = (history, prompt, instructions=None))]
    fn new(history: &Bound<'_, PyAny>, prompt: &str, instructions: Option<&str>) -> PyResult<Self> {
        guarded(|| {
            let history = py_to_value_at(history, "input")?;
            let compaction =
                compaction::Compaction::new(&history, instructions, prompt).map_err(to_py_err)?;
            Ok(PyCompaction {
                compaction,
                done: None,
            })
        })
    }

    /// The summarization call's chat messages, as JSON.
    fn messages_json(&self) -> PyResult<String> {
        guarded(|| self.compaction.messages_json().map_err(to_py_err))
    }

    /// The summarization call's completion (an object or a dict): the compaction is done.
    fn finish(&mut self, completion: &Bound<'_, PyAny>, summary_prefix: &str) -> PyResult<()> {
        guarded(|| {
            let completion = py_to_value(completion)?;
            self.done = Some(self.compaction.finish(&completion, summary_prefix));
            Ok(())
        })
    }

    #[getter]
    fn id(&self) -> PyResult<String> {
        self.done().map(|d| d.id.clone())
    }

    /// The `response.compaction` object, as JSON.
    fn compacted_json(&self) -> PyResult<String> {
        guarded(|| self.done()?.to_json().map_err(to_py_err))
    }

    /// The response record stored under the compaction's id, as JSON.
    fn record_json(&self, model: &str) -> PyResult<String> {
        guarded(|| Ok(self.done()?.record_json(model)))
    }

    /// The compacted window (the record's input items), as JSON.
    fn input_json(&self) -> PyResult<String> {
        guarded(|| self.done()?.input_json().map_err(to_py_err))
    }

    /// The compacted window as chat messages (the record's `messages`), as JSON.
    fn window_messages_json(&self) -> PyResult<String> {
        guarded(|| self.done()?.messages_json().map_err(to_py_err))
    }
}

/// Does an inference error's `body` (a dict) say the context is too long?
#[pyfunction]
pub fn is_context_length_error(body: &Bound<'_, PyAny>) -> PyResult<bool> {
    guarded(|| {
        Ok(py_to_value(body)
            .map(|v| truncation::is_context_length_error(&v))
            .unwrap_or(false))
    })
}

/// The texts whose tokens `context_management` counts, for an `input` (string or items).
#[pyfunction]
pub fn compaction_text_segments(input: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    guarded(|| {
        let input: Value = py_to_value_at(input, "input")?;
        let items = items::parse_input(&input).map_err(to_py_err)?;
        Ok(compaction::text_segments(&items)
            .into_iter()
            .map(str::to_owned)
            .collect())
    })
}
