"""CodeFill streams: code as aligned NAMES (lexical values) and TYPES (syntax roles).

Python's `tokenize` gives the lexical tokens (exact for complete files, and up to the error
for a half-written one); tree-sitter gives the roles of identifiers (attribute, call,
parameter, import, definition, ...). Comments and blank-line breaks are dropped; string and
number literals are abstracted (`<STR>`, `<FSTR>`, `<BYTES>`, `<NUM>`). The NEWLINE token that
ends a logical line is named `<EOS>`: a newline and the end of a statement are one token, and
statement completion generates names up to it. Training data and the server's prompts are
made by the same code here.
"""

from __future__ import annotations

import io
import json
import keyword
import token
import tokenize
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tree_sitter import Parser, Query, QueryCursor

from .documents import PYTHON

# Special names; ids 0.. in this order in every vocabulary.
PAD, UNK, EOT, EOS, INDENT, DEDENT = "<pad>", "<unk>", "<eot>", "<EOS>", "<INDENT>", "<DEDENT>"
STR, FSTR, BYTES, NUM = "<STR>", "<FSTR>", "<BYTES>", "<NUM>"
SPECIALS = [PAD, UNK, EOT, EOS, INDENT, DEDENT, STR, FSTR, BYTES, NUM]

# Identifier roles, most specific first when a name matches several patterns.
ROLES = [
    "FUNCTION_DEF",
    "CLASS_DEF",
    "PARAMETER",
    "KEYWORD_ARG",
    "IMPORT_MODULE",
    "IMPORT_NAME",
    "IMPORT_ALIAS",
    "GLOBAL_NAME",
    "DECORATOR",
    "METHOD_CALL",
    "CALL",
    "ATTRIBUTE_STORE",
    "ATTRIBUTE",
    "SELF",
    "VARIABLE_STORE",
    "ANNOTATION",
    "VARIABLE",
]
_AUGMENTED = {n for n in token.EXACT_TOKEN_TYPES if n.endswith("=") and n not in ("==", "!=")}
_AUGMENTED -= {"<=", ">=", "="}
# Operators by name; the twelve augmented assignments share one type.
OPERATORS = sorted(
    {token.tok_name[t] for s, t in token.EXACT_TOKEN_TYPES.items() if s not in _AUGMENTED}
)
TYPE_NAMES = (
    ["PAD", "EOT", "UNK", "NEWLINE", "INDENT", "DEDENT"]
    + ["STRING", "FSTRING", "BYTES", "DOCSTRING", "NUMBER", "AUGASSIGN"]
    + [f"KW_{k}" for k in keyword.kwlist]
    + OPERATORS
    + ROLES
)
TYPE_ID = {name: i for i, name in enumerate(TYPE_NAMES)}
N_TYPES = len(TYPE_NAMES)

_ROLE_QUERY = Query(
    PYTHON,
    """
    (function_definition name: (identifier) @FUNCTION_DEF)
    (class_definition name: (identifier) @CLASS_DEF)
    (parameters (identifier) @PARAMETER)
    (lambda_parameters (identifier) @PARAMETER)
    (default_parameter name: (identifier) @PARAMETER)
    (typed_parameter (identifier) @PARAMETER)
    (typed_default_parameter name: (identifier) @PARAMETER)
    (parameters (list_splat_pattern (identifier) @PARAMETER))
    (parameters (dictionary_splat_pattern (identifier) @PARAMETER))
    (keyword_argument name: (identifier) @KEYWORD_ARG)
    (import_statement name: (dotted_name (identifier) @IMPORT_MODULE))
    (import_statement name: (aliased_import name: (dotted_name (identifier) @IMPORT_MODULE)))
    (import_from_statement module_name: (dotted_name (identifier) @IMPORT_MODULE))
    (import_from_statement module_name: (relative_import (dotted_name (identifier) @IMPORT_MODULE)))
    (import_from_statement name: (dotted_name (identifier) @IMPORT_NAME))
    (import_from_statement name: (aliased_import name: (dotted_name (identifier) @IMPORT_NAME)))
    (aliased_import alias: (identifier) @IMPORT_ALIAS)
    (global_statement (identifier) @GLOBAL_NAME)
    (nonlocal_statement (identifier) @GLOBAL_NAME)
    (decorator (identifier) @DECORATOR)
    (call function: (attribute attribute: (identifier) @METHOD_CALL))
    (call function: (identifier) @CALL)
    (assignment left: (attribute attribute: (identifier) @ATTRIBUTE_STORE))
    (augmented_assignment left: (attribute attribute: (identifier) @ATTRIBUTE_STORE))
    (attribute attribute: (identifier) @ATTRIBUTE)
    ((identifier) @SELF (#any-of? @SELF "self" "cls"))
    (assignment left: (identifier) @VARIABLE_STORE)
    (assignment left: (pattern_list (identifier) @VARIABLE_STORE))
    (assignment left: (tuple_pattern (identifier) @VARIABLE_STORE))
    (augmented_assignment left: (identifier) @VARIABLE_STORE)
    (for_statement left: (identifier) @VARIABLE_STORE)
    (for_statement left: (pattern_list (identifier) @VARIABLE_STORE))
    (for_in_clause left: (identifier) @VARIABLE_STORE)
    (for_in_clause left: (pattern_list (identifier) @VARIABLE_STORE))
    (named_expression name: (identifier) @VARIABLE_STORE)
    (as_pattern_target (identifier) @VARIABLE_STORE)
    (type (identifier) @ANNOTATION)
    """,
)
_ROLE_RANK = {role: i for i, role in enumerate(ROLES)}


def identifier_roles(source: bytes) -> dict[tuple[int, int], str]:
    """Role of each identifier by its (row, byte column), the most specific pattern winning."""
    tree = Parser(PYTHON).parse(source)  # a parser per call: server threads share this module
    roles: dict[tuple[int, int], str] = {}
    found = QueryCursor(_ROLE_QUERY).captures(tree.root_node)
    for role in sorted(found, key=_ROLE_RANK.__getitem__, reverse=True):
        for node in found[role]:
            roles[node.start_point] = role  # later (more specific) roles overwrite
    return roles


def _string_kind(text: str) -> tuple[str, str]:
    """(name, type) of a string literal from its prefix letters."""
    prefix = text[: min(i for i in (text.find('"'), text.find("'")) if i >= 0)].lower()
    if "f" in prefix:
        return FSTR, "FSTRING"
    if "b" in prefix:
        return BYTES, "BYTES"
    return STR, "STRING"


_STATEMENT_START = ("NEWLINE", "INDENT", "DEDENT")


def _name_and_type(
    tok: tokenize.TokenInfo, prev: str | None, roles: dict, lines: list[str]
) -> tuple[str, str] | None:
    """The (name, type) of one lexical token; None for what the streams leave out."""
    kind = tok.type
    if kind in (tokenize.COMMENT, tokenize.NL, tokenize.ENDMARKER):
        return None
    if kind == tokenize.NEWLINE:
        return EOS, "NEWLINE"
    if kind == tokenize.INDENT:
        return INDENT, "INDENT"
    if kind == tokenize.DEDENT:
        return DEDENT, "DEDENT"
    if kind == tokenize.STRING:
        name, typ = _string_kind(tok.string)
        if typ == "STRING" and (prev is None or prev in _STATEMENT_START):
            typ = "DOCSTRING"  # a string that starts a statement
        return name, typ
    if kind == tokenize.NUMBER:
        return NUM, "NUMBER"
    if kind == tokenize.NAME:
        if keyword.iskeyword(tok.string):
            return tok.string, "KW_" + tok.string
        row, col = tok.start
        line = lines[row - 1] if row - 1 < len(lines) else ""
        if not line.isascii():
            col = len(line[:col].encode("utf-8", "surrogatepass"))
        return tok.string, roles.get((row - 1, col), "VARIABLE")
    if kind == tokenize.OP:
        if tok.string in _AUGMENTED:
            return tok.string, "AUGASSIGN"
        return tok.string, token.tok_name.get(tok.exact_type, "UNK")
    return tok.string, "UNK"  # ERRORTOKEN: a stray character


def streams(text: str, prefix: bool = False) -> tuple[list[str], list[str]]:
    """The aligned (names, types) streams of `text`; a broken tail is cut at the error.

    With `prefix`, `text` ends at a cursor: the line ends and dedents that tokenize makes up
    at the end of input are left out, and a cursor on a blank line after a statement gets the
    <INDENT>/<DEDENT> its column implies.
    """
    roles = identifier_roles(text.encode("utf-8", "surrogatepass"))
    lines = text.split("\n")
    end = (len(lines), len(lines[-1]))
    names: list[str] = []
    types: list[str] = []
    indents = [0]
    dedented: list[int] = []  # widths closed by the DEDENTs at the end so far
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if prefix and tok.start >= end:
                break
            if tok.type == tokenize.INDENT:
                indents.append(len(tok.string))
            if tok.type == tokenize.DEDENT:
                dedented.append(indents.pop())
            elif tok.type not in (tokenize.NL, tokenize.COMMENT, tokenize.ENDMARKER):
                dedented.clear()
            pair = _name_and_type(tok, types[-1] if types else None, roles, lines)
            if pair is not None:
                names.append(pair[0])
                types.append(pair[1])
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass  # half-written code: keep the tokens before the error
    if prefix and dedented:  # made up at the end of input: the cursor's column decides
        del names[-len(dedented) :], types[-len(dedented) :]
        indents.extend(reversed(dedented))
    if prefix and not lines[-1].strip() and (not types or types[-1] in _STATEMENT_START):
        width = len(lines[-1])
        if width > indents[-1]:
            names.append(INDENT)
            types.append("INDENT")
        while width < indents[-1]:
            indents.pop()
            names.append(DEDENT)
            types.append("DEDENT")
    _lexical_roles(names, types)
    return names, types


def _lexical_roles(names: list[str], types: list[str]) -> None:
    """Calls and attributes that error recovery hid from the tree, read from the neighbours.

    In a complete file these agree with the tree; in half-written code (`g(a.b, `) the
    tree often has only an ERROR node there.
    """
    for i, typ in enumerate(types):
        if typ != "VARIABLE":
            continue
        call = i + 1 < len(names) and names[i + 1] == "("
        if i > 0 and names[i - 1] == ".":
            types[i] = "METHOD_CALL" if call else "ATTRIBUTE"
        elif call:
            types[i] = "CALL"


class Vocab:
    """Name vocabulary: specials first, then names by corpus frequency."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.ids = {n: i for i, n in enumerate(names)}
        self.unk = self.ids[UNK]

    @property
    def n_vocab(self) -> int:
        """Number of names, specials included."""
        return len(self.names)

    def encode(self, names: Iterable[str]) -> list[int]:
        """Name ids; unknown names map to <unk>."""
        ids, unk = self.ids, self.unk
        return [ids.get(n, unk) for n in names]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Names of ids."""
        return [self.names[i] for i in ids]

    def token_to_id(self, name: str) -> int | None:
        """The id of a name, or None."""
        return self.ids.get(name)

    def save(self, path: Path) -> None:
        """Write vocab.json (names in id order, and the type names)."""
        path.write_text(json.dumps({"names": self.names, "types": TYPE_NAMES}))

    @classmethod
    def from_file(cls, path: Path) -> Vocab:
        """Read vocab.json."""
        return cls(json.loads(Path(path).read_text())["names"])

    @classmethod
    def build(cls, counts: Counter, size: int = 16384) -> Vocab:
        """The `size - len(SPECIALS)` most frequent names plus the specials."""
        keep = [n for n, _ in counts.most_common() if n not in SPECIALS]
        return cls(SPECIALS + keep[: size - len(SPECIALS)])


def encode_types(types: Iterable[str]) -> list[int]:
    """Type ids of type names."""
    return [TYPE_ID[t] for t in types]
