"""Model builder: every op in both spaces, random genotypes, invalid genotypes, counts."""
import random

import pytest

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
import torch
from torch.utils.flop_counter import FlopCounterMode

from kubenas.contract import ops
from kubenas.contract.genotype import GenotypeError
from kubenas_trainer.training.measure import count_macs, count_parameters
from kubenas_trainer.models import build_model, live_edges

SHAPES = [(1, 8, 8), (3, 32, 32), (1, 28, 28)]

CHAIN_OPS, CELL_OPS, KERNEL_SIZES = tuple(ops.CHAIN_OPS), tuple(ops.CELL_OPS), ops.KERNEL_SIZES


def chain_layer(op, kernel=3, stride=1, filters=6, dilation=2):
    values = {"filters": filters, "kernel": kernel, "stride": stride, "dilation": dilation}
    return {"op": op, **{f: v for f, v in values.items() if ops.CHAIN_OPS[op].takes(f)}}


def cell(edges_op, nodes=4, channels=4, cells=1, stages=2):
    return {"type": "cell", "nodes": nodes, "edges": [[edges_op] * (i + 1) for i in range(nodes - 1)],
            "channels": channels, "cellsPerStage": cells, "stages": stages}


def random_chain(rng):
    layers = []
    for _ in range(rng.randint(1, 8)):
        layers.append(chain_layer(rng.choice(CHAIN_OPS), rng.choice(KERNEL_SIZES), rng.choice((1, 2)),
                                  rng.choice((1, 4, 8, 16))))
    return {"type": "chain", "layers": layers}


def random_cell(rng):
    nodes = rng.randint(2, 5)
    return {"type": "cell", "nodes": nodes,
            "edges": [[rng.choice(CELL_OPS) for _ in range(i + 1)] for i in range(nodes - 1)],
            "channels": rng.choice((2, 4, 8)), "cellsPerStage": rng.randint(1, 2), "stages": rng.randint(1, 3)}


def check_forward(model, shape, classes):
    model.train()
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()
    out.sum().backward()
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, *shape)).shape == (1, classes)


CHAIN_CASES = [(op, k, s) for op in CHAIN_OPS
               for k, s in ([(1, 1), (3, 2), (7, 2)] if ops.CHAIN_OPS[op].takes("kernel") else [(0, 0)])]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op,kernel,stride", CHAIN_CASES)
def test_every_chain_op_runs(op, kernel, stride, shape):
    genotype = {"type": "chain", "layers": [chain_layer("conv", 3, 1, 4), chain_layer(op, kernel, stride)]}
    check_forward(build_model(genotype, shape, 10), shape, 10)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op", CELL_OPS)
def test_every_cell_op_runs(op, shape):
    check_forward(build_model(cell(op, stages=3), shape, 7), shape, 7)


def test_spatial_dims_never_collapse():
    # five stride-2 layers and pools with big kernels take an 8x8 map to 1x1 and keep it there
    layers = [chain_layer("conv", 7, 2, 4), chain_layer("max_pool", 7, 2), chain_layer("avg_pool", 5, 2),
              chain_layer("dw_conv", 7, 2, 4), chain_layer("max_pool", 3, 2), chain_layer("conv", 3, 2, 4)]
    check_forward(build_model({"type": "chain", "layers": layers}, (1, 1, 1), 3), (1, 1, 1), 3)
    check_forward(build_model(cell("conv_3x3", stages=5), (1, 1, 1), 3), (1, 1, 1), 3)
    check_forward(build_model(cell("sep_conv_3x3", stages=4), (3, 7, 5), 4), (3, 7, 5), 4)


@pytest.mark.parametrize("space", ["chain", "cell"])
def test_random_genotypes_build_run_and_script(space):
    rng = random.Random(1234)
    for _ in range(12):
        genotype = random_chain(rng) if space == "chain" else random_cell(rng)
        shape = rng.choice(SHAPES)
        model = build_model(genotype, shape, 10)
        check_forward(model, shape, 10)
        scripted = torch.jit.script(model.eval())
        x = torch.randn(2, *shape)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), model(x))


@pytest.mark.parametrize("genotype,path", [
    ({"type": "chain", "layers": [{"op": "conv", "filters": 8, "kernel": 4, "stride": 1}]}, "layers[0].kernel"),
    ({"type": "chain", "layers": [chain_layer("conv"), {"op": "conv", "kernel": 3, "stride": 1}]},
     "layers[1].filters"),
    ({"type": "chain", "layers": [chain_layer("max_pool"), chain_layer("conv"), {"op": "lstm"}]}, "layers[2].op"),
    ({"type": "chain", "layers": [chain_layer("avg_pool", 3, 3)]}, "layers[0].stride"),
    ({"type": "chain", "layers": []}, "layers"),
    ({"type": "transformer"}, "type"),
    ({"type": "cell", "nodes": 3, "edges": [["conv_3x3"], ["skip_connect", "conv_5x5"]], "channels": 8,
      "cellsPerStage": 1, "stages": 1}, "edges[1][1]"),
    ({"type": "cell", "nodes": 3, "edges": [["conv_3x3"], ["skip_connect"]], "channels": 8,
      "cellsPerStage": 1, "stages": 1}, "edges[1]"),
    ({**cell("conv_3x3"), "channels": 0}, "channels"),
    ({**cell("conv_3x3"), "stages": 9}, "stages"),
    ({**cell("conv_3x3"), "nodes": 1}, "nodes"),
])
def test_invalid_genotypes_name_the_decision(genotype, path):
    with pytest.raises(GenotypeError) as info:
        build_model(genotype, (1, 8, 8), 10)
    assert info.value.path == path
    assert f"architecture.{path}:" in str(info.value)


@pytest.mark.parametrize("shape,classes", [((1, 8), 10), ((0, 8, 8), 10), ((1, 8, 8), 1)])
def test_bad_input_shape_or_classes(shape, classes):
    with pytest.raises(ValueError):
        build_model(cell("conv_3x3"), shape, classes)


def test_chain_counts_match_hand_count():
    genotype = {"type": "chain", "layers": [chain_layer("conv", 3, 1, 4), chain_layer("max_pool", 3, 1),
                                            chain_layer("dw_conv", 3, 2, 8), chain_layer("identity")]}
    model = build_model(genotype, (1, 8, 8), 3)
    # conv 1*4*3*3 + BN(4) 2*4 + depthwise 4*3*3 + pointwise 4*8 + BN(8) 2*8 + linear 8*3+3
    assert count_parameters(model) == 36 + 8 + 36 + 32 + 16 + 27
    # conv: 4x8x8 outputs x 9; depthwise: 4x4x4 x 9; pointwise: 8x4x4 x 4; linear 3 x 8
    assert count_macs(model, (1, 8, 8)) == 4 * 64 * 9 + 4 * 16 * 9 + 8 * 16 * 4 + 3 * 8


def test_cell_counts_match_hand_count():
    genotype = {"type": "cell", "nodes": 2, "edges": [["conv_1x1"]], "channels": 2, "cellsPerStage": 1, "stages": 1}
    model = build_model(genotype, (1, 4, 4), 2)
    # stem 1*2*9 + BN 4; edge conv 2*2 + BN 4; last BN 4; linear 2*2+2
    assert count_parameters(model) == 18 + 4 + 4 + 4 + 4 + 6
    assert count_macs(model, (1, 4, 4)) == 2 * 16 * 9 + 2 * 16 * 2 + 2 * 2


def test_macs_agree_with_torch_flop_counter():
    rng = random.Random(7)
    for genotype in [random_chain(rng) for _ in range(4)] + [random_cell(rng) for _ in range(4)]:
        model = build_model(genotype, (3, 32, 32), 10).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, 3, 32, 32))
        assert 2 * count_macs(model, (3, 32, 32)) == counter.get_total_flops()


def test_dead_and_none_edges_are_not_built():
    # node 3 (the output) only reads node 0: nodes 1 and 2 cannot affect the output
    edges = [["conv_3x3"], ["conv_3x3", "conv_1x1"], ["skip_connect", "none", "none"]]
    assert live_edges(4, edges) == [[], [], [(0, "skip_connect")]]
    pruned = build_model({**cell("none"), "edges": edges}, (1, 8, 8), 10)
    empty = build_model(cell("none"), (1, 8, 8), 10)
    assert count_parameters(pruned) == count_parameters(empty)
    x = torch.randn(2, 1, 8, 8)
    assert pruned(x).shape == (2, 10)


def test_init_is_seeded():
    torch.manual_seed(3)
    a = build_model(cell("conv_3x3"), (1, 8, 8), 10)
    torch.manual_seed(3)
    b = build_model(cell("conv_3x3"), (1, 8, 8), 10)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)


def test_a_parameters_assignment_is_not_built_by_the_built_in_trainer():
    architecture = {"type": "parameters", "parameters": {"lr": 0.01, "layers": [{"width": 64}]}}
    with pytest.raises(GenotypeError) as info:
        build_model(architecture, (1, 8, 8), 10)
    assert info.value.path == "type"
    assert "trial.command" in info.value.message and "trial.model.builder" in info.value.message


def test_torch_free_cost_formula_agrees_with_the_trainers_measurement():
    # kubenas.contract.cost is what hard constraints (maxParameters, maxMacs) reject
    # candidates with before training; it must count exactly what the trainer builds.
    from kubenas.contract.cost import architecture_cost

    rng = random.Random(12)
    genotypes = [random_chain(rng) for _ in range(12)] + [random_cell(rng) for _ in range(12)]
    genotypes += [cell(op, nodes=5, channels=3, cells=2, stages=3) for op in CELL_OPS]
    dead = {**cell("none"), "edges": [["conv_3x3"], ["conv_3x3", "conv_1x1"], ["skip_connect", "none", "none"]]}
    for genotype in genotypes + [dead]:
        for shape in [(1, 8, 8), (3, 13, 11)]:
            model = build_model(genotype, shape, 7)
            assert architecture_cost(genotype, shape, 7) == {
                "parameters": count_parameters(model), "macs": count_macs(model, shape)}, genotype
