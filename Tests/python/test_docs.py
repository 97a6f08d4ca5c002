"""The `conveyor` package documents itself: pydoc renders it, and every public class,
function and method says what it does.

What is checked:
  - pydoc's plain-text renderer succeeds for the package and for every name in
    conveyor.__all__ (a broken signature or a docstring pydoc cannot format fails here);
  - the package has a docstring;
  - every public class, function and method reachable from conveyor.__all__ has a
    non-empty docstring: the classes and functions themselves, and the public attributes
    (methods, class and static methods, properties, C methods and getsets) that each class
    defines or inherits from a class of the package, C extension types included (e.g.
    conveyor._core.Producer, the base of conveyor.Producer). Plain data attributes
    (dataclass fields, __slots__ members, constants) are described by their class's
    docstring and are not checked one by one.

Needs only the installed package: no C or Swift peer program, no environment variable.
"""
import support  # noqa: F401  (first: skips this module under `unittest discover` without the package)

import inspect
import pydoc
import types

import pytest

import conveyor


def _public_names():
    names = getattr(conveyor, "__all__", None)
    if names is None:
        names = [name for name in dir(conveyor) if not name.startswith("_")]
    return sorted(names)


PUBLIC = _public_names()


def _ours(cls):
    """A class defined by the package (Python or C extension), not by Python itself."""
    return (getattr(cls, "__module__", "") or "").split(".")[0] == "conveyor"


def _documented(obj):
    doc = getattr(obj, "__doc__", None)
    return isinstance(doc, str) and doc.strip() != ""


_CALLABLE_KINDS = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
    types.WrapperDescriptorType,
    types.GetSetDescriptorType,
    property,
)


def _members(cls):
    """(qualified name, object) for each public method-like attribute of `cls` that a class
    of the package defines, through the MRO (so inherited C methods count)."""
    found = {}
    for klass in cls.__mro__:
        if not _ours(klass):
            continue
        for attr, value in vars(klass).items():
            if attr.startswith("_") or attr in found:
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, _CALLABLE_KINDS):
                found[attr] = (f"{cls.__name__}.{attr} (from {klass.__module__}.{klass.__qualname__})", value)
            elif inspect.isclass(value) and _ours(value):
                found[attr] = (f"{cls.__name__}.{attr}", value)
    return list(found.values())


def _everything_public():
    """(name, object) for every public class, function and method the package exposes."""
    items = []
    for name in PUBLIC:
        obj = getattr(conveyor, name)
        if inspect.isclass(obj):
            items.append((name, obj))
            items.extend(_members(obj))
        elif callable(obj):
            items.append((name, obj))
    return items


def test_package_has_a_docstring():
    assert _documented(conveyor), "the conveyor package has no docstring"
    # The overview is meant to be read first: more than a title line.
    assert len(conveyor.__doc__.strip().splitlines()) > 3


def test_all_names_exist():
    missing = [name for name in PUBLIC if not hasattr(conveyor, name)]
    assert not missing, f"conveyor.__all__ names what the package lacks: {missing}"


def test_pydoc_renders_the_package():
    text = pydoc.render_doc(conveyor, renderer=pydoc.plaintext)
    assert "conveyor" in text
    assert conveyor.__doc__.strip().splitlines()[0] in text


@pytest.mark.parametrize("name", PUBLIC)
def test_pydoc_renders_each_public_name(name):
    obj = getattr(conveyor, name)
    text = pydoc.render_doc(obj, title=f"conveyor.{name}: %s", renderer=pydoc.plaintext)
    assert name in text


def test_every_public_class_function_and_method_has_a_docstring():
    items = _everything_public()
    # The walk must reach the C extension's methods (a walk that found none checks nothing).
    assert any(isinstance(obj, types.MethodDescriptorType) for _, obj in items)
    undocumented = sorted(name for name, obj in items if not _documented(obj))
    assert not undocumented, "public names without a docstring:\n  " + "\n  ".join(undocumented)
