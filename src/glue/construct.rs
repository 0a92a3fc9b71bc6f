//! Building a host's pydantic response objects from the core's JSON without validating them.
//!
//! Validating a response object in pydantic costs about 1.5 µs per model instance in it (a response,
//! its `text`, each item, each content part), more than the whole core's work for a short answer. The
//! core's JSON is already valid, so the instances can be made the way pydantic's validator makes them:
//! a new instance, its `__dict__` in field order, `__pydantic_fields_set__` (the keys given),
//! `__pydantic_extra__` and `__pydantic_private__`.
//!
//! What a class's fields accept is a *plan* the Python side derives once from the classes'
//! annotations (`responses_rs._construct`), and only for the annotations it knows exactly how pydantic
//! validates. Data the plan does not describe (an unknown item `type`, a missing required field, a
//! value of another kind) makes `build` return `None`, and the caller validates as before.

use std::collections::HashMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::fmt;

use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PySet, PyString, PyTuple, PyType};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::events::generic_setattr;
use super::pyjson::PySeed;

/// What one value accepts, and what it becomes.
enum Kind {
    /// Kept as it is (`Any`).
    Any,
    /// A dict, kept as it is (`dict[str, Any]`).
    Dict,
    Str,
    Int,
    /// A float; an int becomes a float, as pydantic's lax mode converts it.
    Float,
    Bool,
    /// A string among these values (`Literal["a", "b"]`), each with its Python string.
    Literal(Vec<(String, Py<PyString>)>),
    /// An instance of the plan with this index.
    Model(usize),
    List(Box<Kind>),
    /// A dict whose `type` names the plan (a union discriminated by `type`).
    Tagged(HashMap<String, usize>),
    /// A `TypedDict`: a new dict of the declared keys, in declaration order (others are dropped).
    TypedDict(Vec<(Py<PyString>, String, Kind)>),
    /// The first of these kinds that accepts the value.
    Either(Vec<Kind>),
    /// `None`, or the kind.
    Nullable(Box<Kind>),
}

struct Field {
    name: Py<PyString>,
    kind: Kind,
    /// The value when the key is missing (immutable: shared); `None`: required.
    default: Option<Py<PyAny>>,
}

struct Plan {
    cls: Py<PyType>,
    fields: Vec<Field>,
    by_name: HashMap<String, usize>,
    /// `extra="allow"`: other keys are kept in `__pydantic_extra__`; otherwise they are dropped.
    extra_allow: bool,
    /// The one value of its `type` literal, if it has one.
    tag: Option<String>,
}

/// The plans of one family of classes (see the module's documentation).
#[pyclass(module = "responses_rs._core")]
pub struct Constructor {
    plans: Vec<Plan>,
    /// What `build_root_json` builds (`list[Union[...]]` of input items, ...).
    roots: Vec<Kind>,
}

fn parse_kind(spec: &Bound<'_, PyAny>) -> PyResult<Kind> {
    let spec = spec.cast::<PyTuple>()?;
    let tag: String = spec.get_item(0)?.extract()?;
    Ok(match tag.as_str() {
        "any" => Kind::Any,
        "dict" => Kind::Dict,
        "str" => Kind::Str,
        "int" => Kind::Int,
        "float" => Kind::Float,
        "bool" => Kind::Bool,
        "literal" => {
            let values: Vec<String> = spec.get_item(1)?.extract()?;
            Kind::Literal(
                values
                    .into_iter()
                    .map(|v| {
                        let obj = PyString::intern(spec.py(), &v).unbind();
                        (v, obj)
                    })
                    .collect(),
            )
        }
        "model" => Kind::Model(spec.get_item(1)?.extract()?),
        "list" => Kind::List(Box::new(parse_kind(&spec.get_item(1)?)?)),
        "tagged" => Kind::Tagged(spec.get_item(1)?.extract()?),
        "typeddict" => {
            let mut keys = Vec::new();
            for key in spec.get_item(1)?.cast::<PyList>()?.iter() {
                let key = key.cast::<PyTuple>()?;
                let name = key.get_item(0)?.cast::<PyString>()?.clone();
                let text = name.to_str()?.to_owned();
                keys.push((name.unbind(), text, parse_kind(&key.get_item(1)?)?));
            }
            Kind::TypedDict(keys)
        }
        "either" => Kind::Either(
            spec.get_item(1)?
                .cast::<PyList>()?
                .iter()
                .map(|k| parse_kind(&k))
                .collect::<PyResult<_>>()?,
        ),
        "nullable" => Kind::Nullable(Box::new(parse_kind(&spec.get_item(1)?)?)),
        other => return Err(PyValueError::new_err(format!("unknown kind: {other}"))),
    })
}

/// The data does not fit the plan (or building failed): the caller validates instead.
fn unfit<E: de::Error>() -> E {
    E::custom("unfit")
}

/// A value of one kind, read straight from the JSON text.
struct KindSeed<'a, 'py> {
    c: &'a Constructor,
    kind: &'a Kind,
    py: Python<'py>,
}

impl<'de, 'py> DeserializeSeed<'de> for KindSeed<'_, 'py> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        // `Any` and `dict` take the value as JSON gives it (through `Nullable` too: `None` is a value).
        let (kind, nullable) = match self.kind {
            Kind::Nullable(inner) => (inner.as_ref(), true),
            kind => (kind, false),
        };
        match kind {
            Kind::Any => PySeed::new(self.py).deserialize(deserializer),
            Kind::Dict => {
                let value = PySeed::new(self.py).deserialize(deserializer)?;
                if value.is_exact_instance_of::<PyDict>() || (nullable && value.is_none()) {
                    Ok(value)
                } else {
                    Err(unfit())
                }
            }
            _ => deserializer.deserialize_any(self),
        }
    }
}

impl<'de, 'py> Visitor<'de> for KindSeed<'_, 'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value the plan describes")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        match self.kind {
            Kind::Nullable(_) => Ok(self.py.None().into_bound(self.py)),
            _ => Err(unfit()),
        }
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        match self.kind {
            Kind::Bool => Ok(PyBool::new(self.py, v).to_owned().into_any()),
            Kind::Nullable(inner) => self.inner(inner).visit_bool(v),
            _ => Err(unfit()),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match self.kind {
            Kind::Int => {
                let Ok(obj) = v.into_pyobject(self.py);
                Ok(obj.into_any())
            }
            // pydantic's lax mode: an int where a float is declared becomes a float.
            Kind::Float => Ok(PyFloat::new(self.py, v as f64).into_any()),
            Kind::Nullable(inner) => self.inner(inner).visit_i64(v),
            _ => Err(unfit()),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        match self.kind {
            Kind::Int => {
                let Ok(obj) = v.into_pyobject(self.py);
                Ok(obj.into_any())
            }
            Kind::Float => Ok(PyFloat::new(self.py, v as f64).into_any()),
            Kind::Nullable(inner) => self.inner(inner).visit_u64(v),
            _ => Err(unfit()),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        match self.kind {
            Kind::Float => Ok(PyFloat::new(self.py, v).into_any()),
            Kind::Nullable(inner) => self.inner(inner).visit_f64(v),
            _ => Err(unfit()),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match self.kind {
            Kind::Str => Ok(PyString::new(self.py, v).into_any()),
            Kind::Literal(values) => match values.iter().find(|(value, _)| value == v) {
                Some((_, obj)) => Ok(obj.bind(self.py).clone().into_any()),
                None => Err(unfit()),
            },
            Kind::Nullable(inner) => self.inner(inner).visit_str(v),
            Kind::Either(kinds) => match kinds.iter().find(|k| matches!(k, Kind::Str)) {
                Some(k) => self.inner(k).visit_str(v),
                None => Err(unfit()),
            },
            _ => Err(unfit()),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let py = self.py;
        let item = match self.kind {
            Kind::List(item) => item.as_ref(),
            Kind::Nullable(inner) => return self.inner(inner).visit_seq(seq),
            Kind::Either(_) => return self.either_seq(seq),
            _ => return Err(unfit()),
        };
        let list = PyList::empty(py);
        while let Some(value) = seq.next_element_seed(self.inner(item))? {
            list.append(value).map_err(|_| unfit::<A::Error>())?;
        }
        Ok(list.into_any())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        match self.kind {
            Kind::Model(index) => self.c.model_from(self.py, *index, map, None),
            Kind::Tagged(plans) => self.c.tagged_from(self.py, plans, map).map(|(obj, _)| obj),
            Kind::TypedDict(keys) => self.typeddict(keys, map),
            Kind::Nullable(inner) => self.inner(inner).visit_map(map),
            _ => Err(unfit()),
        }
    }
}

impl<'a, 'py> KindSeed<'a, 'py> {
    fn inner(&self, kind: &'a Kind) -> KindSeed<'a, 'py> {
        KindSeed {
            c: self.c,
            kind,
            py: self.py,
        }
    }

    /// A list where the union has list members (`str | list[A] | list[B]`): each item picks its member
    /// by its `type`, and every item must come from the same member (as one of them would validate).
    fn either_seq<'de, A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bound<'py, PyAny>, A::Error> {
        let Kind::Either(kinds) = self.kind else {
            return Err(unfit());
        };
        let list = PyList::empty(self.py);
        let mut member: Option<usize> = None;
        while let Some(value) = seq.next_element_seed(EitherItem {
            seed: self.inner(self.kind),
            kinds,
            member: &mut member,
        })? {
            list.append(value).map_err(|_| unfit::<A::Error>())?;
        }
        Ok(list.into_any())
    }

    fn typeddict<'de, A: MapAccess<'de>>(
        self,
        keys: &'a [(Py<PyString>, String, Kind)],
        mut map: A,
    ) -> Result<Bound<'py, PyAny>, A::Error> {
        let py = self.py;
        let mut values: Vec<Option<Bound<'py, PyAny>>> = keys.iter().map(|_| None).collect();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match keys.iter().position(|(_, name, _)| name == key.as_ref()) {
                Some(i) => values[i] = Some(map.next_value_seed(self.inner(&keys[i].2))?),
                None => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let dict = PyDict::new(py);
        for ((name, _, _), value) in keys.iter().zip(values) {
            if let Some(value) = value {
                dict.set_item(name.bind(py), value)
                    .map_err(|_| unfit::<A::Error>())?;
            }
        }
        Ok(dict.into_any())
    }
}

/// One item of a list in a union with several list members (see `either_seq`).
struct EitherItem<'a, 'm, 'py> {
    seed: KindSeed<'a, 'py>,
    kinds: &'a [Kind],
    member: &'m mut Option<usize>,
}

impl<'de, 'py> DeserializeSeed<'de> for EitherItem<'_, '_, 'py> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, 'py> Visitor<'de> for EitherItem<'_, '_, 'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with a type")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // The member is the list whose items accept this `type` (the first key, as the core writes it).
        let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
            return Err(unfit());
        };
        if key != "type" {
            return Err(unfit());
        }
        let tag: std::borrow::Cow<'de, str> = map.next_value()?;
        let py = self.seed.py;
        for (i, kind) in self.kinds.iter().enumerate() {
            let Kind::List(item) = kind else { continue };
            let plan = match item.as_ref() {
                Kind::Tagged(plans) => plans.get(tag.as_ref()).copied(),
                Kind::Model(index) => self
                    .seed
                    .c
                    .plans
                    .get(*index)
                    .filter(|p| p.tag.as_deref() == Some(tag.as_ref()))
                    .map(|_| *index),
                _ => None,
            };
            if let Some(plan) = plan {
                if self.member.is_some_and(|m| m != i) {
                    return Err(unfit());
                }
                *self.member = Some(i);
                return self.seed.c.model_from(py, plan, map, Some(&tag));
            }
        }
        Err(unfit())
    }
}

impl Constructor {
    fn read<'py>(&self, py: Python<'py>, kind: &Kind, text: &str) -> Option<Bound<'py, PyAny>> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let built = KindSeed { c: self, kind, py }.deserialize(&mut deserializer);
        match built {
            Ok(obj) if deserializer.end().is_ok() => Some(obj),
            _ => None,
        }
    }

    /// An item of a union discriminated by `type`; `type` must be its first key (the core writes it
    /// first), otherwise it is unfit.
    fn tagged_from<'de, 'py, A: MapAccess<'de>>(
        &self,
        py: Python<'py>,
        plans: &HashMap<String, usize>,
        mut map: A,
    ) -> Result<(Bound<'py, PyAny>, usize), A::Error> {
        let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
            return Err(unfit());
        };
        if key != "type" {
            return Err(unfit());
        }
        let tag: std::borrow::Cow<'de, str> = map.next_value()?;
        let Some(&plan) = plans.get(tag.as_ref()) else {
            return Err(unfit());
        };
        Ok((self.model_from(py, plan, map, Some(&tag))?, plan))
    }

    /// A model instance from the rest of a JSON object (`tag`: its `type`, already read).
    fn model_from<'de, 'py, A: MapAccess<'de>>(
        &self,
        py: Python<'py>,
        index: usize,
        mut map: A,
        tag: Option<&str>,
    ) -> Result<Bound<'py, PyAny>, A::Error> {
        let Some(plan) = self.plans.get(index) else {
            return Err(unfit());
        };
        let mut values: Vec<Option<Bound<'py, PyAny>>> = plan.fields.iter().map(|_| None).collect();
        if let Some(tag) = tag {
            let Some(&i) = plan.by_name.get("type") else {
                return Err(unfit());
            };
            let seed = KindSeed {
                c: self,
                kind: &plan.fields[i].kind,
                py,
            };
            values[i] = Some(seed.visit_str::<A::Error>(tag)?);
        }
        let extra = if plan.extra_allow {
            Some(PyDict::new(py))
        } else {
            None
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match plan.by_name.get(key.as_ref()) {
                Some(&i) => {
                    values[i] = Some(map.next_value_seed(KindSeed {
                        c: self,
                        kind: &plan.fields[i].kind,
                        py,
                    })?);
                }
                None => match &extra {
                    Some(extra) => {
                        let value = map.next_value_seed(PySeed::new(py))?;
                        extra
                            .set_item(PyString::new(py, &key), value)
                            .map_err(|_| unfit::<A::Error>())?;
                    }
                    None => {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                },
            }
        }
        self.instance(py, plan, values, extra)
            .map_err(|_| unfit::<A::Error>())
    }

    fn instance<'py>(
        &self,
        py: Python<'py>,
        plan: &Plan,
        values: Vec<Option<Bound<'py, PyAny>>>,
        extra: Option<Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fields = PyDict::new(py);
        let given = PySet::empty(py)?;
        for (field, value) in plan.fields.iter().zip(values) {
            let name = field.name.bind(py);
            match value {
                Some(value) => {
                    fields.set_item(name, value)?;
                    given.add(name)?;
                }
                None => match &field.default {
                    Some(default) => fields.set_item(name, default.bind(py))?,
                    None => return Err(PyValueError::new_err("unfit")),
                },
            }
        }
        if let Some(extra) = &extra {
            for key in extra.keys() {
                given.add(key)?;
            }
        }
        let cls = plan.cls.bind(py);
        // SAFETY: `object.__new__(cls)` is `cls->tp_alloc(cls, 0)` for a class whose `__new__` is
        // object's own (the Python side only plans such classes); a null result carries a Python error.
        let obj = unsafe {
            let tp = cls.as_ptr() as *mut pyo3::ffi::PyTypeObject;
            let alloc = (*tp).tp_alloc.unwrap_or(pyo3::ffi::PyType_GenericAlloc);
            Bound::from_owned_ptr_or_err(py, alloc(tp, 0))?
        };
        generic_setattr(&obj, pyo3::intern!(py, "__dict__"), fields.as_any())?;
        generic_setattr(
            &obj,
            pyo3::intern!(py, "__pydantic_fields_set__"),
            given.as_any(),
        )?;
        let extra = match extra {
            Some(extra) => extra.into_any(),
            None => py.None().into_bound(py),
        };
        generic_setattr(&obj, pyo3::intern!(py, "__pydantic_extra__"), &extra)?;
        generic_setattr(
            &obj,
            pyo3::intern!(py, "__pydantic_private__"),
            &py.None().into_bound(py),
        )?;
        Ok(obj)
    }
}

#[pymethods]
impl Constructor {
    /// `plans`: one `(cls, fields, extra_allow)` per class, `fields` a list of `(name, kind, has_default,
    /// default)`; a kind is a tuple (`("str",)`, `("model", index)`, `("list", kind)`, ...).
    #[new]
    #[pyo3(signature = (plans, roots=None))]
    fn new(plans: &Bound<'_, PyList>, roots: Option<&Bound<'_, PyList>>) -> PyResult<Self> {
        let mut out = Vec::new();
        for spec in plans.iter() {
            let spec = spec.cast::<PyTuple>()?;
            let cls = spec.get_item(0)?.cast::<PyType>()?.clone().unbind();
            let mut fields = Vec::new();
            let mut by_name = HashMap::new();
            for field in spec.get_item(1)?.cast::<PyList>()?.iter() {
                let field = field.cast::<PyTuple>()?;
                let name = field.get_item(0)?.cast::<PyString>()?.clone();
                by_name.insert(name.to_str()?.to_owned(), fields.len());
                let has_default: bool = field.get_item(2)?.extract()?;
                fields.push(Field {
                    name: name.unbind(),
                    kind: parse_kind(&field.get_item(1)?)?,
                    default: has_default
                        .then(|| field.get_item(3))
                        .transpose()?
                        .map(Bound::unbind),
                });
            }
            let tag = by_name
                .get("type")
                .and_then(|&i: &usize| match &fields[i].kind {
                    Kind::Literal(values) if values.len() == 1 => Some(values[0].0.clone()),
                    _ => None,
                });
            out.push(Plan {
                cls,
                fields,
                by_name,
                extra_allow: spec.get_item(2)?.extract()?,
                tag,
            });
        }
        let roots = match roots {
            Some(roots) => roots
                .iter()
                .map(|k| parse_kind(&k))
                .collect::<PyResult<_>>()?,
            None => Vec::new(),
        };
        Ok(Self { plans: out, roots })
    }

    /// An instance of plan `index` built from the JSON text (the core's), or `None` when the text is
    /// not what the plan describes (the caller validates it instead).
    fn build_json<'py>(
        &self,
        py: Python<'py>,
        index: usize,
        text: &str,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        super::guarded(|| {
            if index >= self.plans.len() {
                return Ok(None);
            }
            Ok(self.read(py, &Kind::Model(index), text))
        })
    }

    /// A value of root kind `root` (see the constructor) built from the JSON text, or `None` as above.
    fn build_root_json<'py>(
        &self,
        py: Python<'py>,
        root: usize,
        text: &str,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        super::guarded(|| {
            Ok(match self.roots.get(root) {
                Some(kind) => self.read(py, kind, text),
                None => None,
            })
        })
    }
}
