"""orca_jax/tools/hyper.py."""

import pytest

from orca_jax.tools import hyper


def test_product_of_sweep_and_zip():
    points = hyper.product(
        [
            hyper.sweep("LEARNING_RATE", [1e-5, 2e-5]),
            hyper.zipit([hyper.sweep("BATCH_SIZE", [64, 128]), hyper.sweep("MICROBATCHES", [1, 2])]),
        ]
    )
    assert points == [
        {"LEARNING_RATE": 1e-5, "BATCH_SIZE": 64, "MICROBATCHES": 1},
        {"LEARNING_RATE": 1e-5, "BATCH_SIZE": 128, "MICROBATCHES": 2},
        {"LEARNING_RATE": 2e-5, "BATCH_SIZE": 64, "MICROBATCHES": 1},
        {"LEARNING_RATE": 2e-5, "BATCH_SIZE": 128, "MICROBATCHES": 2},
    ]


def test_chain_fixed_and_errors():
    assert hyper.chainit([hyper.fixed("A", 1), hyper.sweep("B", [2, 3])]) == [{"A": 1}, {"B": 2}, {"B": 3}]
    assert hyper.product([]) == [{}]
    with pytest.raises(ValueError, match="different lengths"):
        hyper.zipit([hyper.sweep("A", [1, 2]), hyper.sweep("B", [1])])
    with pytest.raises(ValueError, match="set twice"):
        hyper.product([hyper.sweep("A", [1]), hyper.sweep("A", [2])])
    with pytest.raises(ValueError, match="no values"):
        hyper.sweep("A", [])
    with pytest.raises(ValueError, match="bad gin binding name"):
        hyper.sweep("A=1", [1])


@pytest.mark.parametrize(
    "value, text",
    [
        (1e-5, "1e-05"),
        (2e-5, "2e-05"),
        (0.1, "0.1"),
        (64, "64"),
        (True, "True"),
        (None, "None"),
        ("orca_stage1", '"orca_stage1"'),
        ((1, 2), "(1, 2)"),
        ((1,), "(1,)"),
        ([1, "a"], '[1, "a"]'),
        ({"inputs": 1024}, '{"inputs": 1024}'),
        (hyper.raw("@orca.fn()"), "@orca.fn()"),
    ],
)
def test_gin_literal(value, text):
    assert hyper.gin_literal(value) == text


def test_gin_literals_parse_in_gin():
    gin = pytest.importorskip("gin")
    gin.clear_config()
    try:
        for i, value in enumerate([1e-5, 64, True, None, "orca_stage1", (1, 2), [1, "a"], {"inputs": 1024}]):
            gin.parse_config(f"V{i} = {hyper.gin_literal(value)}")
            assert gin.query_parameter(f"%V{i}") == value
    finally:
        gin.clear_config()
