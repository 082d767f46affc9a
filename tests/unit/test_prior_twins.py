"""Numbers about a prior come from its scipy twin: the twin must be the same distribution."""
import jax
import numpy as np
import pytest
from scipy import stats

from bayescale.errors import BayescaleError
from bayescale.priors import ALLOWED, median, parse, scipy_twin

PRIORS = [
    "Normal(0.3, 0.1)", "LogNormal(0.5, 0.5)", "HalfNormal(0.5)", "HalfCauchy(2.0)", "StudentT(3, 1.0, 0.5)",
    "Gamma(2, 0.1)", "Exponential(4)", "Beta(2, 3)", "Uniform(-1, 2)", "TruncatedNormal(1.7, 0.5, low=0)",
    "TruncatedNormal(0.3, 1.0, low=0, high=1)", "Cauchy(1, 2)", "InverseGamma(3, 2)",
]
DRAWS = 4000


def test_every_allowed_family_but_delta_has_a_twin():
    covered = {text.split("(")[0] for text in PRIORS}
    assert covered == set(ALLOWED) - {"Delta"}
    assert scipy_twin(parse("Delta(2.0)")) is None and median(parse("Delta(2.0)")) == 2.0


@pytest.mark.parametrize("text", PRIORS)
def test_the_twin_is_the_same_distribution(text):
    prior = parse(text)
    draws = np.asarray(prior.sample(jax.random.PRNGKey(1), (DRAWS,)), np.float64)
    twin = scipy_twin(prior)
    assert stats.kstest(draws, twin.cdf).pvalue > 1e-4
    # the median the sampler's coordinates start from: within Monte-Carlo error of the draws'
    assert abs(np.mean(draws <= median(prior)) - 0.5) < 4 * 0.5 / np.sqrt(DRAWS)


def test_a_wrong_twin_fails_the_same_check():
    """Control: Gamma's rate read as a scale (a classic slip) is caught by the test above."""
    prior = parse("Gamma(2, 0.1)")
    draws = np.asarray(prior.sample(jax.random.PRNGKey(1), (DRAWS,)), np.float64)
    assert stats.kstest(draws, stats.gamma(2, scale=0.1).cdf).pvalue < 1e-10


@pytest.mark.parametrize("text", ["Uniform(1, 0)", "Normal(0, 1e999)", "TruncatedNormal(0, 1, low=5, high=4)",
                                  "Normal(0, -1)", "Gamma(0, 1)"])
def test_impossible_priors_are_refused(text):
    with pytest.raises(BayescaleError, match="invalid prior"):
        parse(text)
