"""Model arguments select a method; invalid combinations fail with a message naming the argument."""

from __future__ import annotations

import pytest

from model_wrappers.methods import PAPER_ALPHA_GRID, MethodArgumentError, MethodConfig, format_layers, parse_layers


def test_defaults_are_the_plain_baseline_on_all_layers():
    config = MethodConfig.from_model_args()
    assert config.method == "baseline" and config.layers is None and config.confidence_rule == "paper_rounded"


def test_lmms_eval_style_values_are_parsed():
    # lmms-eval turns "0.5" into a float, "2" into an int and leaves "0.5|1.5" a string
    config = MethodConfig.from_model_args(method="adapt_vis", alpha1=0.5, alpha2=2, threshold="0.3")
    assert (config.alpha1, config.alpha2, config.threshold) == (0.5, 2.0, 0.3)
    assert MethodConfig.from_model_args(method="sweep", alphas="0.5|1.5").sweep_alphas == (1.0, 0.5, 1.5)
    assert MethodConfig.from_model_args(method="sweep").alphas == PAPER_ALPHA_GRID


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"method": "scaling"}, "method='scaling' is not supported; allowed: baseline, scaling_vis, adapt_vis, sweep"),
        ({"method": "baseline", "alpha": 0.5}, "alpha is not used by method=baseline"),
        ({"method": "scaling_vis"}, "method=scaling_vis needs alpha"),
        ({"method": "scaling_vis", "alpha": 0}, "alpha=0 must be > 0"),
        ({"method": "scaling_vis", "alpha": -1.5}, "alpha=-1.5 must be > 0"),
        ({"method": "scaling_vis", "alpha": "abc"}, "alpha='abc' is not a number"),
        ({"method": "scaling_vis", "alpha": "nan"}, "alpha='nan' must be a finite number"),
        ({"method": "adapt_vis", "alpha1": 0.5, "alpha2": 1.5}, "method=adapt_vis needs threshold"),
        ({"method": "adapt_vis", "alpha1": 0.5, "alpha2": 1.5, "threshold": 1.2}, "threshold=1.2 must lie in [0, 1]"),
        ({"method": "adapt_vis", "alpha1": 0.5, "alpha2": 1.5, "threshold": -0.1}, "threshold=-0.1 must lie in [0, 1]"),
        (
            {"method": "adapt_vis", "alpha": 0.5, "alpha1": 0.5, "alpha2": 1.5, "threshold": 0.3},
            "alpha is not used by method=adapt_vis",
        ),
        ({"method": "sweep", "alphas": "0.5||2"}, "has an empty entry"),
        ({"method": "sweep", "alphas": "0.5|0.5"}, "lists an alpha twice"),
        ({"method": "sweep", "alphas": "0.5|x"}, "alphas='x' is not a number"),
        ({"method": "baseline", "confidence_rule": "rounded"}, "confidence_rule='rounded' is not supported"),
        ({"method": "baseline", "layers": "1-x"}, "'1-x' is not a layer index"),
        ({"method": "baseline", "layers": "5-2"}, "'5-2' is not a layer index"),
    ],
)
def test_invalid_arguments_are_refused_with_the_argument_named(arguments, message):
    with pytest.raises(MethodArgumentError) as error:
        MethodConfig.from_model_args(**arguments)
    assert message in str(error.value)


def test_layers_accept_all_indices_ranges_and_lists():
    assert parse_layers("all") is None
    assert parse_layers(3) == (3,)
    assert parse_layers("8-11") == (8, 9, 10, 11)
    assert parse_layers("0|4|2-3") == (0, 2, 3, 4)


def test_layers_beyond_the_model_are_refused():
    config = MethodConfig.from_model_args(layers="0-4")
    config.check_layers(5)
    with pytest.raises(MethodArgumentError, match="layers=0-4 names layer 4, but the language model has 4 decoder"):
        config.check_layers(4)


def test_layer_lists_print_compactly():
    assert format_layers((0, 1, 2, 5, 7, 8)) == "0-2|5|7-8"
    assert parse_layers(format_layers((0, 1, 2, 5, 7, 8))) == (0, 1, 2, 5, 7, 8)
