"""Reading a NASExperiment file: YAML or JSON, loaded with bounds on size, nesting and
alias expansion, then validated (``load_experiment_file``)."""
from __future__ import annotations

from pathlib import Path

import yaml

from . import EXPERIMENT_KIND
from .bounds import MAX_NESTING
from .issues import ExperimentInvalid, Issue
from .validation import validate_experiment

# Bounds on an experiment file. Real experiments are a few kilobytes with a few hundred
# YAML nodes; the caps refuse abuse (a YAML alias bomb, a multi-megabyte list) before
# anything walks the document, so validation never hangs or exhausts memory.


# Bounds on an experiment file. Real experiments are a few kilobytes with a few hundred
# YAML nodes; the caps refuse abuse (a YAML alias bomb, a multi-megabyte list) before
# anything walks the document, so validation never hangs or exhausts memory.
MAX_FILE_BYTES = 1024 * 1024  # the API server's request limit is about 1.5 MiB

MAX_YAML_NODES = 50_000  # scalars, lists and maps, counting each use of an alias in full

MAX_YAML_DEPTH = MAX_NESTING


class _InputTooLarge(yaml.YAMLError):
    def __init__(self, message: str, mark=None):
        super().__init__(message)
        self.message = message
        self.mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses documents nested too deeply or whose aliases expand
    past MAX_YAML_NODES, checked on the node graph before any Python object is built
    (PyYAML composes an alias as a reference to its anchor's node, so a billion-laughs
    file is small until something walks it)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _InputTooLarge(f"is nested more than {MAX_YAML_DEPTH} levels deep; "
                                     "an experiment needs a handful", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        _check_expanded_size(node)
        return node


def _check_expanded_size(root) -> None:
    """Count the nodes of the document as if every alias were written out in full
    (memoized on the node graph, so linear in the file), refusing cycles."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        children = ([c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value))
        if children_done:
            in_progress.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_YAML_NODES:
                raise _InputTooLarge(
                    f"holds, from here on, more than {MAX_YAML_NODES} YAML values, lists and maps once "
                    "each alias (*name) is counted in full; an experiment has a few hundred: shorten the "
                    "lists, or drop the aliases if this is a YAML alias bomb", node.start_mark)
            continue
        if key in in_progress:
            raise _InputTooLarge("holds an alias (*name) that refers to itself; a NASExperiment "
                                 "cannot be recursive", node.start_mark)
        in_progress.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in in_progress:
                raise _InputTooLarge("holds an alias (*name) that refers to a node containing it; a "
                                     "NASExperiment cannot be recursive", child.start_mark)
            if id(child) not in sizes:
                stack.append((child, False))


def _where(path: str, mark) -> str:
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path


def _snippet(mark) -> str:
    snippet = mark.get_snippet(indent=4, max_length=100) if mark is not None else None
    return f"\n{snippet}" if snippet else ""


def _yaml_issue(path: str, err: yaml.YAMLError) -> Issue:
    """A YAML error as file:line:column, what is wrong, and the line with a caret."""
    if isinstance(err, _InputTooLarge):
        return Issue(_where(path, err.mark), f"{err.message}{_snippet(err.mark)}")
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        problem = err.problem or "invalid syntax"
        context = ""
        if err.context:
            context = f" ({err.context}"
            if err.context_mark is not None and err.context_mark is not mark:
                context += f" at line {err.context_mark.line + 1}, column {err.context_mark.column + 1}"
            context += ")"
        return Issue(_where(path, mark), f"is not valid YAML: {problem}{context}; "
                     f"fix the syntax at the caret{_snippet(mark)}")
    return Issue(path, f"is not valid YAML: {err}")


def load_experiment_text(text: str, path: str = "<input>") -> list:
    """The YAML documents of ``text``, loaded with the bounds above; ExperimentInvalid if bad."""
    documents = []
    loader = _BoundedLoader(text)
    try:
        while loader.check_data():
            documents.append(loader.get_data())
    except yaml.YAMLError as err:
        raise ExperimentInvalid([_yaml_issue(path, err)]) from None
    finally:
        loader.dispose()
    return documents


def load_experiment_file(path: str | Path) -> dict:
    """Read one NASExperiment from a YAML or JSON file; raise ExperimentInvalid if bad."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except IsADirectoryError:
        raise ExperimentInvalid([Issue(str(path), "is a directory; pass the NASExperiment YAML file")]) from None
    except OSError as err:
        raise ExperimentInvalid([Issue(str(path), f"cannot read the file: {err.strerror or err}; "
                                       "check the path and its permissions")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ExperimentInvalid([Issue(str(path), f"is larger than {MAX_FILE_BYTES // 1024} KiB; "
                                       "a NASExperiment is a few KiB: is this the right file?")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ExperimentInvalid([Issue(str(path), f"is not UTF-8 text (byte {err.start}); "
                                       "save it as UTF-8 YAML or JSON")]) from None
    documents = [d for d in load_experiment_text(text, str(path)) if d is not None]
    experiments = [d for d in documents if isinstance(d, dict) and d.get("kind") == EXPERIMENT_KIND]
    if len(documents) == 1:
        obj = documents[0]
    elif len(experiments) == 1:
        obj = experiments[0]
    else:
        raise ExperimentInvalid([Issue(str(path), f"must hold exactly one {EXPERIMENT_KIND}, "
                                       f"found {len(experiments)} among {len(documents)} documents")])
    issues = validate_experiment(obj)
    if issues:
        raise ExperimentInvalid(issues)
    return obj
