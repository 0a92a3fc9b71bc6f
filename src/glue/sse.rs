//! The byte-level pieces of `responses-rs serve`'s hot path (see `core::sse`): the HTTP/1.1 chunked
//! framing of an upstream body, and the exception for a body that is not a chat stream.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::core::sse;

pyo3::create_exception!(
    _core,
    UpstreamError,
    PyRuntimeError,
    "The model server's body is not a Chat Completions stream (bad framing, bad JSON, an error chunk)."
);

/// `Transfer-Encoding: chunked` removed from an HTTP/1.1 body fed as read from the socket.
#[pyclass(module = "responses_rs._core", name = "ChunkedBody")]
pub struct PyChunkedBody {
    inner: sse::ChunkedBody,
}

#[pymethods]
impl PyChunkedBody {
    #[new]
    fn new() -> Self {
        PyChunkedBody {
            inner: sse::ChunkedBody::new(),
        }
    }

    /// The body bytes in `data` (possibly empty); raises `UpstreamError` on bad framing.
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        super::guarded(|| {
            let mut out = Vec::with_capacity(data.len());
            self.inner
                .feed(data, &mut out)
                .map_err(|e| UpstreamError::new_err(e.0))?;
            Ok(PyBytes::new(py, &out))
        })
    }

    /// The terminating zero-size chunk (and trailers) have been read.
    #[getter]
    fn done(&self) -> bool {
        self.inner.done()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyChunkedBody>()?;
    m.add("UpstreamError", m.py().get_type::<UpstreamError>())?;
    Ok(())
}
