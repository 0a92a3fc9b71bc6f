"""Plans for building pydantic response objects from the core's JSON without validating them.

A response object validated by pydantic costs about 1.5 µs per model instance in it; the Rust
`Constructor` (src/glue/construct.rs) makes the very instances pydantic's validator would make, from a
plan of each class's fields derived here, once, from the annotations. Only annotations whose validation
is known exactly are planned (plain scalars, `Literal`, `Any`, `dict`, lists, models, `TypedDict`, unions
discriminated by `type`, and unions whose members cannot accept the same value); a class with anything
else (validators, aliases, constraints, private attributes, `extra="forbid"`, ...) gets no plan, and its
objects are validated as before. Data a plan does not describe is validated as before too.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typing_extensions
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ._core import Constructor

_SCALARS = {str: ("str",), int: ("int",), float: ("float",), bool: ("bool",)}
_IMMUTABLE = (type(None), str, int, float, bool)


class Unsupported(Exception):
    """An annotation or class whose validation the plan does not reproduce exactly."""


def _union_options(meta: list[Any]) -> tuple[str | None, str | None]:
    """The discriminator and union mode a field's metadata sets; anything else is unsupported."""
    discriminator = union_mode = None
    for item in meta:
        if isinstance(item, FieldInfo):
            if set(getattr(item, "_attributes_set", {})) - {"discriminator", "union_mode"}:
                raise Unsupported(f"field metadata {item!r}")
            _, mode = _union_options(list(item.metadata))
            union_mode = mode or union_mode
            if item.discriminator is not None:
                discriminator = item.discriminator
        elif type(item).__name__ == "_PydanticGeneralMetadata" and set(vars(item)) <= {"union_mode"}:
            union_mode = vars(item).get("union_mode", union_mode)
        else:
            raise Unsupported(f"metadata {item!r}")
    if discriminator is not None and discriminator != "type":
        raise Unsupported(f"discriminator {discriminator!r}")
    return discriminator, union_mode


def _strict(info: FieldInfo) -> bool:
    return bool(getattr(info, "strict", None)) or "strict" in getattr(info, "_attributes_set", {})


def _literal_values(tp: Any) -> list[str] | None:
    if get_origin(tp) is Literal and all(isinstance(v, str) for v in get_args(tp)):
        return list(get_args(tp))
    return None


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


class Planner:
    def __init__(self) -> None:
        self.plans: list[Any] = []
        self.index: dict[type, int] = {}

    def model(self, cls: type[BaseModel]) -> int:
        known = self.index.get(cls)
        if known is not None:
            return known
        config = cls.model_config
        decorators = cls.__pydantic_decorators__
        if (
            decorators.validators
            or decorators.field_validators
            or decorators.root_validators
            or decorators.model_validators
            or cls.__private_attributes__
            or cls.__pydantic_post_init__ is not None
            or getattr(cls, "__pydantic_root_model__", False)
            or cls.__new__ is not object.__new__
            or config.get("extra") not in (None, "ignore", "allow")
            or config.get("strict")
            or config.get("validate_default")
            or config.get("alias_generator") is not None
        ):
            raise Unsupported(f"class {cls.__qualname__}")
        index = self.index[cls] = len(self.plans)
        self.plans.append(None)
        fields = []
        for name, info in cls.model_fields.items():
            if (info.alias not in (None, name)) or info.validation_alias is not None or _strict(info):
                raise Unsupported(f"{cls.__qualname__}.{name}: alias or strict")
            kind = self.kind(info.annotation, list(info.metadata), info.discriminator)
            default = info.default
            has_default = default is not PydanticUndefined and info.default_factory is None
            if has_default and not isinstance(default, _IMMUTABLE):
                has_default = False  # pydantic copies it: the field must be in the data
            fields.append((name, kind, has_default, default if has_default else None))
        self.plans[index] = (cls, fields, config.get("extra") == "allow")
        return index

    def kind(self, tp: Any, meta: list[Any] | None = None, discriminator: Any = None) -> tuple[Any, ...]:
        if get_origin(tp) is Annotated:
            args = get_args(tp)
            return self.kind(args[0], list(args[1:]) + list(meta or ()), discriminator)
        d, union_mode = _union_options(meta or [])
        discriminator = discriminator if discriminator is not None else d
        if discriminator is not None and discriminator != "type":
            raise Unsupported(f"discriminator {discriminator!r}")
        if tp is Any:
            return ("any",)
        if tp in _SCALARS:
            return _SCALARS[tp]
        values = _literal_values(tp)
        if values is not None:
            return ("literal", values)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return ("model", self.model(tp))
        if typing.is_typeddict(tp) or typing_extensions.is_typeddict(tp):
            if tp.__required_keys__:
                raise Unsupported(f"TypedDict {tp.__qualname__} with required keys")
            hints = typing_extensions.get_type_hints(tp, include_extras=True)
            return ("typeddict", [(key, self.kind(hint)) for key, hint in hints.items()])
        origin = get_origin(tp)
        if origin is list and len(get_args(tp)) == 1:
            return ("list", self.kind(get_args(tp)[0]))
        if tp is dict or (origin is dict and get_args(tp) in ((str, Any), ())):
            return ("dict",)
        if _is_union(tp):
            return self.union(list(get_args(tp)), discriminator, union_mode)
        raise Unsupported(f"annotation {tp!r}")

    def union(self, members: list[Any], discriminator: Any, union_mode: str | None) -> tuple[Any, ...]:
        nullable = type(None) in members
        members = [m for m in members if m is not type(None)]
        # A union of string literals (`Literal["a"] | Literal["b"]`) is one literal.
        literals = [_literal_values(m) for m in members]
        if len(members) == 1:
            kind = self.kind(members[0], discriminator=discriminator)
        elif members and all(v is not None for v in literals):
            kind: tuple[Any, ...] = ("literal", [v for vs in literals for v in vs or ()])
        elif discriminator == "type" or self._all_tagged(members):
            # Without a discriminator too: when every member is a model with its own `type` literal, data
            # that gives `type` (first, as the plan requires) fits that member only, whatever the mode.
            kind = ("tagged", self.tagged(members))
        else:
            kind = self.disjoint(members)
        return ("nullable", kind) if nullable else kind

    @staticmethod
    def _all_tagged(members: list[Any]) -> bool:
        seen: set[str] = set()
        for member in members:
            if get_origin(member) is Annotated:
                return False  # metadata on a member: not planned
            if not (isinstance(member, type) and issubclass(member, BaseModel)):
                return False
            field = member.model_fields.get("type")
            values = _literal_values(field.annotation) if field is not None else None
            if not values or len(values) != 1 or values[0] in seen:
                return False
            seen.add(values[0])
        return True

    def tagged(self, members: list[Any]) -> dict[str, int]:
        tags: dict[str, int] = {}
        for member in members:
            if get_origin(member) is Annotated:
                member = get_args(member)[0]
            if not (isinstance(member, type) and issubclass(member, BaseModel)):
                raise Unsupported(f"tagged member {member!r}")
            type_field = member.model_fields.get("type")
            values = _literal_values(type_field.annotation) if type_field is not None else None
            if not values:
                raise Unsupported(f"tagged member {member.__qualname__} without a type literal")
            plan = self.model(member)
            for value in values:
                if value in tags:
                    raise Unsupported(f"tag {value!r} twice")
                tags[value] = plan
        return tags

    def disjoint(self, members: list[Any]) -> tuple[Any, ...]:
        """A union without discriminator, planned only when no value fits two members (then smart and
        left-to-right modes both pick the one that fits): at most one `str`, and lists of unions
        discriminated by `type` whose tags do not overlap."""
        kinds = [self.kind(m) for m in members]
        seen_tags: set[str] = set()
        strings = 0
        for k in kinds:
            if k == ("str",):
                strings += 1
            elif k[0] == "list" and k[1][0] == "tagged":
                if seen_tags & set(k[1][1]):
                    raise Unsupported("overlapping list unions")
                seen_tags |= set(k[1][1])
            elif k[0] == "list" and k[1][0] == "model":
                tags = self._model_tags(k[1][1])
                if seen_tags & tags:
                    raise Unsupported("overlapping list unions")
                seen_tags |= tags
            else:
                raise Unsupported(f"union member {k!r}")
        if strings > 1:
            raise Unsupported("two strings in a union")
        return ("either", kinds)

    def _model_tags(self, index: int) -> set[str]:
        cls = self.plans[index][0] if self.plans[index] is not None else None
        type_field = cls.model_fields.get("type") if cls is not None else None
        values = _literal_values(type_field.annotation) if type_field is not None else None
        if not values or type_field is None or type_field.default not in values:
            raise Unsupported("list member without a type literal")
        # A member model validates a dict only when its `type` is its literal: a list of it never
        # accepts an item of another member's tag (the literal is required or defaults to itself).
        return set(values)


def constructor(cls: type[BaseModel]) -> tuple[Constructor, int] | None:
    """The constructor and plan index for `cls`, or None when it cannot be planned."""
    planner = Planner()
    try:
        index = planner.model(cls)
    except Unsupported:
        return None
    return Constructor(planner.plans), index


def root_constructor(tp: Any) -> tuple[Constructor, int] | None:
    """The constructor and root index for a type that is not a model (`list[Union[...]]`), or None."""
    planner = Planner()
    try:
        root = planner.kind(tp)
    except Unsupported:
        return None
    return Constructor(planner.plans, [root]), 0


class Builder:
    """`build(json)`: the instance of `cls` pydantic would validate from the JSON, made directly when the
    class and the data fit a plan, else validated."""

    def __init__(self, cls: type[BaseModel]) -> None:
        self.cls = cls
        self._validate = cls.model_validate_json
        planned = constructor(cls)
        self.planned = planned is not None
        if planned is None:
            self._build = None
        else:
            built, index = planned
            build_json = built.build_json
            self._build = lambda text: build_json(index, text)

    def __call__(self, text: str) -> Any:
        if self._build is not None:
            obj = self._build(text)
            if obj is not None:
                return obj
        return self._validate(text)
