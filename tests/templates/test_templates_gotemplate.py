"""The Go text/template engine: syntax, Go semantics, printing and errors."""

from __future__ import annotations

from typing import Any

import pytest

from pyllama.templates.gotemplate import (
    OrderedMap,
    Template,
    TemplateExecError,
    TemplateSyntaxError,
    json_marshal,
)


def render(source: str, data: Any = None, **funcs: Any) -> str:
    return Template(source, funcs or {"json": json_marshal}).render({} if data is None else data)


@pytest.mark.parametrize("source, expected", [
    ("a  {{- 1 -}}  b", "a1b"),
    ("a {{- 1 }} b", "a1 b"),
    ("a\n\n{{- /* note */ -}}\n\nb", "ab"),
    ("a{{/* x */}}b", "ab"),
    ("{{ 1 }}{{-1}}", "1-1"),  # "{{-1}}" is the number -1, not a trim marker
    ("{{ `raw\\n` }}{{ \"q\\t\\u00e9\" }}", "raw\\nq\té"),
    ("{{ 'a' }} {{ 0x10 }} {{ 1.5 }} {{ 1e6 }} {{ 1_000 }}", "97 16 1.5 1e+06 1000"),
    ("{{ true }} {{ false }}", "true false"),
])
def test_lexing_and_trim_markers(source: str, expected: str) -> None:
    assert render(source) == expected


def test_if_else_if_chain() -> None:
    tmpl = Template('{{ if eq .R "a" }}A{{ else if eq .R "b" }}B{{ else }}other{{ end }}')
    assert [tmpl.render({"R": r}) for r in ("a", "b", "c")] == ["A", "B", "other"]


def test_range_forms_else_break_continue() -> None:
    data = {"L": ["x", "y", "z"], "E": [], "M": {"b": 2, "a": 1}}
    assert render("{{ range .L }}{{ . }}{{ end }}", data) == "xyz"
    assert render("{{ range $i, $v := .L }}{{ $i }}={{ $v }};{{ end }}", data) == "0=x;1=y;2=z;"
    assert render("{{ range $v := .L }}{{ $v }}{{ end }}", data) == "xyz"
    assert render("{{ range .E }}no{{ else }}empty{{ end }}", data) == "empty"
    assert render("{{ range .Missing }}no{{ else }}none{{ end }}", data) == "none"
    assert render("{{ range $k, $v := .M }}{{ $k }}{{ $v }}{{ end }}", data) == "a1b2"
    assert render('{{ range .L }}{{ if eq . "y" }}{{ break }}{{ end }}{{ . }}{{ end }}', data) == "x"
    assert render('{{ range .L }}{{ if eq . "y" }}{{ continue }}{{ end }}{{ . }}{{ end }}', data) == "xz"
    assert render("{{ range 3 }}{{ . }}{{ end }}") == "012"


def test_with_and_variables() -> None:
    data = {"A": {"B": "deep"}, "S": ""}
    assert render("{{ with .A }}{{ .B }}{{ end }}", data) == "deep"
    assert render("{{ with .S }}yes{{ else }}no{{ end }}", data) == "no"
    assert render("{{ with .S }}1{{ else with .A }}{{ .B }}{{ end }}", data) == "deep"
    assert render("{{ $x := 1 }}{{ $x }}{{ $x = 2 }}{{ $x }}") == "12"
    # assignment inside a range updates the outer variable (Go >= 1.11)
    assert render("{{ $n := 0 }}{{ range $i, $_ := .L }}{{ $n = $i }}{{ end }}{{ $n }}", {"L": [1, 2, 3]}) == "2"
    assert render("{{ range .L }}{{ $.T }}{{ end }}", {"L": [1, 2], "T": "t"}) == "tt"
    assert render("{{ $.A.B }}", data) == "deep"


def test_pipelines_and_parentheses() -> None:
    data = {"L": [1, 2, 3]}
    assert render("{{ .L | len }}", data) == "3"
    assert render('{{ "x" | printf "%s-%s" "a" }}') == "a-x"
    assert render("{{ eq (len (slice .L 1)) 2 }}", data) == "true"
    assert render("{{ (index .L 0) }}", data) == "1"


@pytest.mark.parametrize("source, expected", [
    ("{{ and 1 0 2 }}|{{ and 1 2 }}|{{ or 0 \"\" }}|{{ or 0 3 }}", "0|2||3"),
    ("{{ not 0 }} {{ not \"x\" }}", "true false"),
    ('{{ eq 1 2 1 }} {{ ne "a" "b" }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt 1.5 2.5 }} {{ ge "b" "a" }}',
     "true true true true false true"),
    ('{{ len "héllo" }} {{ slice "hello" 1 3 }} {{ index "abc" 1 }}', "6 el 98"),
    ('{{ print 1 2 "a" "b" 3 }}', "1 2ab3"),
    ('{{ println 1 "a" }}', "1 a\n"),
    ('{{ printf "%d|%5s|%-3d|%05.1f|%q|%v|%t|%x|%%" 7 "ab" 4 3.14159 "hi\\n" 2.0 true 255 }}',
     '7|   ab|4  |003.1|"hi\\n"|2|true|ff|%'),
    ('{{ printf "%d %s" 1 }}', "1 %!s(MISSING)"),
    ('{{ printf "%d" "x" }}', "%!d(string=x)"),
    ('{{ html "<a href=\'x\'>&</a>" }}', "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"),
])
def test_builtin_functions(source: str, expected: str) -> None:
    assert render(source) == expected


def test_go_printing_and_truthiness() -> None:
    data = {"L": ["a", "b"], "M": {"z": 1, "a": [1, 2]}, "N": None, "F": 0.5, "Big": 1234567.0,
            "E": [], "O": OrderedMap(b=1, a="<x>")}
    assert render("{{ .L }}|{{ .M }}|{{ .N }}|{{ .Nope }}|{{ .F }}|{{ .Big }}", data) == \
        "[a b]|map[a:[1 2] z:1]|<no value>|<no value>|0.5|1.234567e+06"
    assert render("{{ .O }}|{{ json .M }}|{{ json .O }}", data) == \
        '{"b":1,"a":"\\u003cx\\u003e"}|{"a":[1,2],"z":1}|{"b":1,"a":"\\u003cx\\u003e"}'
    falsy = ["", 0, 0.0, None, [], {}, False]
    for value in falsy:
        assert render("{{ if .V }}t{{ else }}f{{ end }}", {"V": value}) == "f"
    for value in ["0", 1, -1, [0], {"a": 0}, True]:
        assert render("{{ if .V }}t{{ else }}f{{ end }}", {"V": value}) == "t"


def test_define_template_block() -> None:
    source = '{{ define "T" }}[{{ . }}]{{ end }}{{ template "T" .X }}{{ block "B" .Y }}<{{ . }}>{{ end }}'
    assert render(source, {"X": 1, "Y": 2}) == "[1]<2>"


@pytest.mark.parametrize("source, message", [
    ("{{ foo 1 }}", "1:4: function 'foo' not defined"),
    ("{{ if .X }}x", "unexpected EOF"),
    ("line1\n{{ end }}", "2:4: unexpected {{end}}"),
    ("{{ .X ", "unclosed action"),
    ("{{ $y }}", "undefined variable '$y'"),
    ("{{ range .L }}{{ else }}{{ else }}{{ end }}", "expected end"),
    ("{{ break }}", "outside {{range}}"),
    ('{{ "abc }}', "unterminated quoted string"),
    ("{{ /* x */ }}", "unexpected"),
])
def test_syntax_errors_name_the_position(source: str, message: str) -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        Template(source)
    assert message in str(info.value)
    assert str(info.value).startswith("template: :")


@pytest.mark.parametrize("source, data, message", [
    ('{{ eq 1 "a" }}', {}, "incompatible types for comparison"),
    ("{{ index .L 5 }}", {"L": [1]}, "index out of range: 5"),
    ("{{ .S.Field }}", {"S": "text"}, "can't evaluate field Field in type string"),
    ("{{ .Nope.Field }}", {}, "nil pointer evaluating interface {}.Field"),
    ("{{ len 3 }}", {}, "len of type int"),
    ("{{ range .S }}{{ end }}", {"S": "text"}, "range can't iterate over text"),
])
def test_exec_errors_name_the_position(source: str, data: dict[str, Any], message: str) -> None:
    with pytest.raises(TemplateExecError) as info:
        Template(source).render(data)
    assert message in str(info.value)
    assert ":1:" in str(info.value)


def test_parse_once_render_many() -> None:
    tmpl = Template("{{ .A }}")
    assert [tmpl.render({"A": i}) for i in range(3)] == ["0", "1", "2"]
