"""Pairwise preferences (A beat B) aggregated into a ranking with the Bradley-Terry model,
P(i beats j) = p_i / (p_i + p_j), fitted by Hunter's MM iteration or by Newton's method on the log
strengths, with seeded bootstrap confidence intervals over the comparisons.

Strengths are reported as log-strengths centred to mean 0 and as Elo-style ratings
(400 / ln 10 * log-strength + 1000). A tie counts as half a win each way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmlab.core.errors import InputError

ELO_SCALE = 400 / math.log(10)


@dataclass(frozen=True)
class BTConfig:
    method: str = "mm"  # mm (Hunter 2004 minorize-maximize) or newton (on log-strengths)
    prior: float = 0.0  # pseudo-games each pair gets, split half/half; > 0 keeps strengths finite
    max_iter: int = 10000  # iteration cap
    tol: float = 1e-10  # stop when log-strengths move less than this
    n_bootstrap: int = 1000  # bootstrap resamples of the comparisons (0: no intervals)
    confidence: float = 0.95  # central interval width
    seed: int = 0  # bootstrap seed

    # the bootstrap's settings (`llmlab.core.config.check_applies`), checked for the flags given
    APPLIES = {k: (lambda c: c.n_bootstrap > 0, "to the bootstrap intervals (--n-bootstrap > 0)")
               for k in ("confidence", "seed")}

    def __post_init__(self):
        if self.method not in ("mm", "newton"):
            raise InputError(f"method must be 'mm' or 'newton', got {self.method!r}")
        if self.prior < 0:
            raise InputError(f"prior must be >= 0, got {self.prior}")
        if self.max_iter < 1 or self.tol <= 0 or self.n_bootstrap < 0:
            raise InputError("need max_iter >= 1, tol > 0 and n_bootstrap >= 0")
        if not 0 < self.confidence < 1:
            raise InputError(f"confidence must be in (0, 1), got {self.confidence}")


@dataclass(frozen=True)
class Ranking:
    players: tuple[str, ...]  # best first
    log_strength: tuple[float, ...]  # centred to mean 0, same order as players
    elo: tuple[float, ...]  # 1000 + 400/ln10 * log_strength
    ci_low: tuple[float, ...] | None  # bootstrap interval of elo (None without bootstrap)
    ci_high: tuple[float, ...] | None
    n_games: tuple[int, ...]  # comparisons each player took part in


def win_matrix(comparisons: Sequence[tuple[str, str, float]], players: Sequence[str]) -> np.ndarray:
    """W[i, j] = wins of i over j, from (a, b, score of a) triples (1 win, 0 loss, 0.5 tie).

    >>> win_matrix([("x", "y", 1.0), ("y", "x", 0.5)], ["x", "y"]).tolist()
    [[0.0, 1.5], [0.5, 0.0]]
    """
    index = {p: i for i, p in enumerate(players)}
    w = np.zeros((len(players), len(players)))
    for a, b, s in comparisons:
        w[index[a], index[b]] += s
        w[index[b], index[a]] += 1.0 - s
    return w


def _check_connected(w: np.ndarray, players: Sequence[str]) -> None:
    """The MLE is finite only if every player beats someone who (transitively) beats them back."""
    n = len(players)
    reach = (w > 0) | np.eye(n, dtype=bool)
    for _ in range(max(1, int(math.ceil(math.log2(max(n, 2)))))):
        reach = reach | ((reach.astype(np.int64) @ reach.astype(np.int64)) > 0)
    if not reach.all():
        i, j = np.argwhere(~reach)[0]
        raise InputError(f"{players[i]!r} never (even indirectly) beats {players[j]!r}: strengths are infinite; "
                         "set prior > 0 to regularize")


def fit_mm(w: np.ndarray, max_iter: int = 10000, tol: float = 1e-10) -> np.ndarray:
    """Log-strengths by Hunter's MM: p_i <- W_i / sum_j n_ij / (p_i + p_j), then renormalize.

    >>> np.round(fit_mm(np.array([[0.0, 3.0], [1.0, 0.0]])), 6).tolist()  # log(3)/2 each side of 0
    [0.549306, -0.549306]
    """
    games = w + w.T
    wins = w.sum(axis=1)
    p = np.ones(len(w))
    for _ in range(max_iter):
        denom = (games / (p[:, None] + p[None, :])).sum(axis=1)
        new = wins / denom
        new /= np.exp(np.log(new).mean())
        done = np.max(np.abs(np.log(new) - np.log(p))) < tol
        p = new
        if done:
            break
    lg = np.log(p)
    return lg - lg.mean()


def fit_newton(w: np.ndarray, max_iter: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Log-strengths by Newton's method on the log-likelihood (first player pinned, then centred).

    >>> np.round(fit_newton(np.array([[0.0, 3.0], [1.0, 0.0]])), 6).tolist()
    [0.549306, -0.549306]
    """
    n = len(w)
    games = w + w.T
    wins = w.sum(axis=1)
    theta = np.zeros(n)
    for _ in range(max_iter):
        prob = 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))  # P(i beats j)
        grad = wins - (games * prob).sum(axis=1)
        h = games * prob * prob.T
        hess = np.diag(h.sum(axis=1)) - h  # negative Hessian
        step = np.zeros(n)
        step[1:] = np.linalg.solve(hess[1:, 1:], grad[1:])
        theta += step
        if np.max(np.abs(step)) < tol:
            break
    return theta - theta.mean()


def _fit(w: np.ndarray, cfg: BTConfig) -> np.ndarray:
    n = len(w)
    if cfg.prior > 0:
        w = w + (cfg.prior / 2) * (1 - np.eye(n))
    if cfg.method == "mm":
        return fit_mm(w, cfg.max_iter, cfg.tol)
    return fit_newton(w, min(cfg.max_iter, 200), cfg.tol)


def bradley_terry(comparisons: Sequence[tuple[str, str, float]], cfg: BTConfig | None = None) -> Ranking:
    """Rank players from (a, b, score of a) comparisons; intervals from resampling comparisons.

    >>> r = bradley_terry([("a", "b", 1.0)] * 3 + [("b", "a", 1.0)], BTConfig(n_bootstrap=0))
    >>> r.players, [round(x, 3) for x in r.log_strength]
    (('a', 'b'), [0.549, -0.549])
    """
    cfg = cfg or BTConfig()
    comps = [(str(a), str(b), float(s)) for a, b, s in comparisons]
    if not comps:
        raise InputError("need at least one comparison")
    for a, b, s in comps:
        if a == b or not 0.0 <= s <= 1.0:
            raise InputError(f"bad comparison ({a!r}, {b!r}, {s}): players must differ and score be in [0, 1]")
    players = sorted({a for a, _, _ in comps} | {b for _, b, _ in comps})
    w = win_matrix(comps, players)
    if cfg.prior == 0:
        _check_connected(w, players)
    theta = _fit(w, cfg)
    low = high = None
    if cfg.n_bootstrap:
        low, high = _bootstrap(comps, players, cfg)
    order = sorted(range(len(players)), key=lambda i: -theta[i])
    games = (w + w.T).sum(axis=1)
    pick = lambda xs: tuple(float(xs[i]) for i in order)  # noqa: E731
    return Ranking(tuple(players[i] for i in order), pick(theta), pick(1000 + ELO_SCALE * theta),
                   pick(low) if low is not None else None, pick(high) if high is not None else None,
                   tuple(int(round(games[i])) for i in order))


def _bootstrap(comps, players, cfg: BTConfig) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(cfg.seed)
    reg = BTConfig(cfg.method, max(cfg.prior, 1e-3), cfg.max_iter, 1e-8, 0, cfg.confidence, cfg.seed)
    samples = np.empty((cfg.n_bootstrap, len(players)))
    for b in range(cfg.n_bootstrap):
        idx = rng.integers(0, len(comps), len(comps))
        samples[b] = 1000 + ELO_SCALE * _fit(win_matrix([comps[i] for i in idx], players), reg)
    alpha = (1 - cfg.confidence) / 2
    return np.quantile(samples, alpha, axis=0), np.quantile(samples, 1 - alpha, axis=0)


def comparisons_from_records(records: Sequence[dict], lines: Sequence[int] | None = None,
                             where: str = "record") -> list[tuple[str, str, float]]:
    """Comparisons from JSON records: {"winner": A, "loser": B} or {"a": A, "b": B, "winner": "a"|"b"|"tie"}.
    Players are named by strings; an error names the record as `where` and its number (`lines[i]`, e.g.
    a file's line numbers, blank lines counted; else 1, 2, ...).

    >>> comparisons_from_records([{"winner": "x", "loser": "y"}, {"a": "x", "b": "z", "winner": "tie"}])
    [('x', 'y', 1.0), ('x', 'z', 0.5)]
    """
    out = []
    for i, r in enumerate(records):
        at = f"{where} {lines[i] if lines is not None else i + 1}"
        if not isinstance(r, dict):
            raise InputError(f"{at} is not a JSON object")
        if "loser" in r and "winner" in r:
            names, score = (r["winner"], r["loser"]), 1.0
        elif {"a", "b", "winner"} <= r.keys() and r["winner"] in ("a", "b", "tie"):
            names, score = (r["a"], r["b"]), {"a": 1.0, "b": 0.0, "tie": 0.5}[r["winner"]]
        else:
            raise InputError(f"{at} needs winner+loser, or a, b and winner in 'a', 'b', 'tie'; got {r}")
        if not all(isinstance(n, str) for n in names):  # str() would rank a player named 'None' or '5'
            raise InputError(f"{at}: players are named by strings, got {names[0]!r} and {names[1]!r}")
        if names[0] == names[1]:
            raise InputError(f"{at} compares {names[0]!r} with itself")
        out.append((names[0], names[1], score))
    return out
