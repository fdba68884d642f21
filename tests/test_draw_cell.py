"""Drawings of cells (weightsharing/drawing.py) and tools/draw_cell.py."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest

from nas.cli import run_cli
from nas.errors import UserError
from tools.draw_cell import main
from weightsharing.drawing import draw, parse_arch, resolve_backend, to_dot

NB201 = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
DARTS_V2 = {
    "normal": [
        ["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1],
        ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2],
    ],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [
        ["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
        ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1],
    ],
    "reduce_concat": [2, 3, 4, 5],
}  # fmt: skip
PNG, PDF = b"\x89PNG", b"%PDF"


def edges(graph) -> set[tuple[str, str, str]]:
    return {(e.src, e.dst, e.op) for e in graph.edges}


def test_nb201_graph_leaves_out_none_edges():
    (g,) = parse_arch(NB201)
    assert g.name == "cell"
    assert [(n.id, n.kind) for n in g.nodes] == [
        ("n0", "input"), ("n1", "intermediate"), ("n2", "intermediate"), ("n3", "output"),
    ]  # fmt: skip
    assert edges(g) == {
        ("n0", "n1", "nor_conv_3x3"), ("n1", "n2", "avg_pool_3x3"),
        ("n0", "n3", "skip_connect"), ("n1", "n3", "nor_conv_3x3"),
    }  # fmt: skip
    assert parse_arch(json.dumps(NB201))[0].edges == g.edges  # the JSON text of a net.subnet


def test_darts_graphs_one_per_cell_type():
    normal, reduce = parse_arch(DARTS_V2)
    assert (normal.name, reduce.name) == ("normal", "reduce")
    assert [n.label for n in normal.nodes] == ["c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}"]
    assert [n.kind for n in normal.nodes] == ["input"] * 2 + ["intermediate"] * 4 + ["output"]
    assert edges(normal) == {
        ("c_k_2", "n0", "sep_conv_3x3"), ("c_k_1", "n0", "sep_conv_3x3"),
        ("c_k_2", "n1", "sep_conv_3x3"), ("c_k_1", "n1", "sep_conv_3x3"),
        ("c_k_1", "n2", "sep_conv_3x3"), ("c_k_2", "n2", "skip_connect"),
        ("c_k_2", "n3", "skip_connect"), ("n0", "n3", "dil_conv_3x3"),
        *{(f"n{i}", "c_k", "") for i in range(4)},
    }  # fmt: skip
    assert ("n0", "n1", "skip_connect") in edges(reduce) and ("c_k_1", "n3", "max_pool_3x3") in edges(reduce)
    assert len(reduce.edges) == 8 + 4
    # none is left out; the concatenation follows *_concat; JSON text and DARTS's printed form read alike
    g = {"normal": [["none", 0], ["sep_conv_5x5", 1], ["avg_pool_3x3", 2], ["none", 1]], "normal_concat": [3]}
    (cell,) = parse_arch(g)
    assert edges(cell) == {("c_k_1", "n0", "sep_conv_5x5"), ("n0", "n1", "avg_pool_3x3"), ("n1", "c_k", "")}
    assert parse_arch(json.dumps(DARTS_V2))[1].edges == reduce.edges
    text = (
        "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=range(2, 3), "
        "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])"
    )
    assert edges(parse_arch(text)[0]) == {
        ("c_k_2", "n0", "sep_conv_3x3"), ("c_k_1", "n0", "skip_connect"), ("n0", "c_k", ""),
    }  # fmt: skip


@pytest.mark.parametrize(
    "arch, words",
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|", "node groups"),
        ("|conv9~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown operation"),
        ("hello", "neither"),
        ("{not json", "not valid JSON"),
        (42, "not a int"),
        ({"normal": [["sep_conv_3x3", 0]]}, "two per intermediate node"),
        ({"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 2]]}, "input 2 of intermediate node 0"),
        ({"normal": [["sep_conv_3x3", 0], "sep_conv_3x3"]}, "pair 1"),
        ({"normal": [[3, 0], ["sep_conv_3x3", 1]]}, "not an operation name"),
        ({"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]], "normal_concat": [2, 9]}, "normal_concat"),
        ({"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]], "normall": []}, "unknown key"),
        ({"reduce_concat": [2]}, "no 'normal' or 'reduce'"),
        ("Genotype(normal=foo)", "not a literal"),
    ],
)
def test_malformed_architectures_are_one_line_errors(arch, words):
    with pytest.raises(UserError) as e:
        parse_arch(arch)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_dot_text_has_the_edges_and_colours():
    (g,) = parse_arch(NB201)
    text = to_dot(g)
    assert text.startswith('digraph "cell" {') and "rankdir=LR" in text and text.rstrip().endswith("}")
    found = set(re.findall(r'"(\w+)" -> "(\w+)" \[label="(\w+)"', text))
    assert found == edges(g) and "none" not in text
    assert '"n0" [label="0 (in)", fillcolor=darkseagreen2]' in text
    assert '"n1" [label="1", fillcolor=lightblue]' in text
    assert '"n3" [label="3 (out)", fillcolor=palegoldenrod]' in text
    normal = to_dot(parse_arch(DARTS_V2)[0])
    assert '"n0" -> "n3" [label="dil_conv_3x3"' in normal
    assert len(re.findall(r'-> "c_k" \[color=gray\]', normal)) == 4
    assert '[label="c_{k-2}", fillcolor=darkseagreen2]' in normal


def test_matplotlib_backend_writes_png_and_pdf(tmp_path):
    paths = draw(NB201, tmp_path / "nb", backend="matplotlib") + draw(
        DARTS_V2, tmp_path / "darts", stem="v2", backend="matplotlib"
    )
    names = [os.path.relpath(p, tmp_path) for p in paths]
    assert names == [
        "nb/cell.dot", "nb/cell.png", "nb/cell.pdf",
        "darts/v2_normal.dot", "darts/v2_normal.png", "darts/v2_normal.pdf",
        "darts/v2_reduce.dot", "darts/v2_reduce.png", "darts/v2_reduce.pdf",
    ]  # fmt: skip
    for p in paths:
        data = open(p, "rb").read()
        assert data[:4] == {".png": PNG, ".pdf": PDF, ".dot": b"digr"}[os.path.splitext(p)[1]], p


def fake_dot(folder, fail: bool = False) -> str:
    """A ``dot`` program that logs its arguments and writes 'fake' to its -o file (or fails)."""
    folder.mkdir(exist_ok=True)
    log = folder / "calls.log"
    body = (
        'echo "cannot render: syntax error in line 1" >&2\nexit 3\n'
        if fail
        else 'out=""\nwhile [ $# -gt 0 ]; do\n  if [ "$1" = "-o" ]; then out="$2"; fi\n  shift\ndone\n'
        'printf fake > "$out"\n'
    )
    script = folder / "dot"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n{body}')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(log)


def test_dot_backend_runs_the_dot_program(tmp_path, monkeypatch):
    log = fake_dot(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert resolve_backend("auto") == "dot"
    out = tmp_path / "out"
    paths = draw(DARTS_V2, out, backend="dot")
    assert paths == [
        str(out / f"cell_{k}.{ext}") for k in ("normal", "reduce") for ext in ("dot", "png", "pdf")
    ]
    for p in paths:
        assert open(p, "rb").read()[:4] == (b"digr" if p.endswith(".dot") else b"fake")
    calls = open(log).read().splitlines()
    assert calls == [
        f"-T{fmt} {out / f'cell_{k}.dot'} -o {out / f'cell_{k}.{fmt}'}"
        for k in ("normal", "reduce")
        for fmt in ("png", "pdf")
    ]
    # a failing dot is a one-line error with its first line of stderr
    fake_dot(tmp_path / "bad", fail=True)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bad'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(UserError, match="syntax error in line 1") as e:
        draw(NB201, tmp_path / "out2", backend="dot")
    assert "\n" not in str(e.value)


def test_auto_without_dot_uses_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert resolve_backend("auto") == "matplotlib"
    with pytest.raises(UserError, match="needs Graphviz's dot"):
        resolve_backend("dot")
    paths = draw(NB201, tmp_path, backend="auto")
    assert open(paths[1], "rb").read()[:4] == PNG


def run(argv, capsys) -> tuple[int, list[str], list[str]]:
    rc = run_cli(main, argv)
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err.splitlines()


def test_cli_draws_a_subnet_file_and_a_run_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no_dot_here"))
    net = tmp_path / "net_ab12" / "net.subnet"
    net.parent.mkdir()
    net.write_text(json.dumps(NB201))
    rc, out, err = run([str(net)], capsys)
    assert (rc, err) == (0, [])
    folder = os.path.join("results", "analysis", "draw_cell", "net_ab12")
    assert out == [os.path.join(folder, f"cell.{ext}") for ext in ("dot", "png", "pdf")]
    assert all(os.path.getsize(p) > 0 for p in out)

    run_dir = tmp_path / "darts_run"
    (run_dir / "final").mkdir(parents=True)
    (run_dir / "final" / "net.subnet").write_text(json.dumps(DARTS_V2))
    rc, out, err = run([str(run_dir), "--backend", "matplotlib"], capsys)
    assert (rc, err) == (0, [])
    folder = os.path.join("results", "analysis", "draw_cell", "darts_run")
    assert out == [
        os.path.join(folder, f"cell_{k}.{e}") for k in ("normal", "reduce") for e in ("dot", "png", "pdf")
    ]
    assert open(out[1], "rb").read()[:4] == PNG and open(out[5], "rb").read()[:4] == PDF

    # an inline architecture, --out and --name
    rc, out, _ = run([NB201, "--out", str(tmp_path / "mine")], capsys)
    assert rc == 0 and out[0] == str(tmp_path / "mine" / "cell.dot")
    log = fake_dot(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    rc, out, _ = run([json.dumps(DARTS_V2), "--name", "v2"], capsys)
    assert rc == 0 and out[0] == os.path.join("results", "analysis", "draw_cell", "v2", "cell_normal.dot")
    assert len(open(log).read().splitlines()) == 4  # auto found dot: png + pdf of both cells


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda tmp: str(tmp / "no" / "such" / "run"), "not an existing file or folder"),
        (lambda tmp: "|nor_conv_3x3~0|+|bad~0|none~1|", "cell string"),
        (lambda tmp: str(tmp), "without final/net.subnet"),
        (lambda tmp: '{"normal": [["sep_conv_3x3", 7], ["sep_conv_3x3", 1]]}', "input 7"),
    ],
)
def test_cli_bad_input_is_one_line_with_status_2(tmp_path, monkeypatch, capsys, make, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "iter_0").mkdir()  # a folder that is not a finished run
    rc, out, err = run([make(tmp_path)], capsys)
    assert rc == 2 and out == [] and len(err) == 1 and words in err[0], err
    assert not (tmp_path / "results").exists()


def test_cli_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in ("PATH_OR_ARCH", "--out", "--backend", "--name", "auto,dot,matplotlib", "final/net.subnet"):
        assert flag in text
