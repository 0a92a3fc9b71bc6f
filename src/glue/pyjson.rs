//! JSON text straight to Python objects (no intermediate `serde_json::Value`), for the `Any` values
//! of the response objects `construct` builds. The result is what `json.loads` gives: dicts keep the
//! text's key order (a later duplicate key wins), integers are `int`, other numbers `float`.

use std::fmt;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Nesting deeper than this is refused (the core's own JSON never comes close).
const MAX_DEPTH: usize = 128;

pub(super) struct PySeed<'py> {
    py: Python<'py>,
    depth: usize,
}

impl<'de, 'py> DeserializeSeed<'de> for PySeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

fn py_err<E: de::Error>(err: PyErr) -> E {
    E::custom(err.to_string())
}

impl<'de, 'py> Visitor<'de> for PySeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.py.None().into_bound(self.py))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(pyo3::types::PyBool::new(self.py, v).to_owned().into_any())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        let Ok(obj) = v.into_pyobject(self.py);
        Ok(obj.into_any())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        let Ok(obj) = v.into_pyobject(self.py);
        Ok(obj.into_any())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        let Ok(obj) = v.into_pyobject(self.py);
        Ok(obj.into_any())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.py, v).into_any())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let depth = self.deeper::<A::Error>()?;
        let list = PyList::empty(self.py);
        while let Some(item) = seq.next_element_seed(PySeed { py: self.py, depth })? {
            list.append(item).map_err(py_err)?;
        }
        Ok(list.into_any())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let depth = self.deeper::<A::Error>()?;
        let dict = PyDict::new(self.py);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let value = map.next_value_seed(PySeed { py: self.py, depth })?;
            // Keys repeat (`created_at`, `type`, `text`...): interned strings are shared, as CPython's
            // own JSON decoder shares them (its memo).
            let key = PyString::new(self.py, &key);
            dict.set_item(key, value).map_err(py_err)?;
        }
        Ok(dict.into_any())
    }
}

impl<'py> PySeed<'py> {
    pub(super) fn new(py: Python<'py>) -> Self {
        Self { py, depth: 0 }
    }

    fn deeper<E: de::Error>(&self) -> Result<usize, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom("JSON nested too deeply"));
        }
        Ok(self.depth + 1)
    }
}
