"""The ratio sampler against a live service: samples only while the feed is live."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from support.poll import eventually
from support.server import LiveService, live_service

from cotiza.models import Indicators, RatioSample, RatioValues
from cotiza.settings import Settings
from cotiza.storage.tables import ratio_samples

pytestmark = pytest.mark.live


def byma(ticker: str) -> str:
    return f"MERV - XMEV - {ticker} - 24hs"


AL30, AL30D, GD30, GD30D = byma("AL30"), byma("AL30D"), byma("GD30"), byma("GD30D")
# Sampler rounds to watch for samples that must not appear: at RATIO_SAMPLE_INTERVAL = 0.2 s
# (tests/api/live.py) the old behaviour stored one per pair and round.
QUIET_ROUNDS = 6


async def stored_since(live: LiveService, since: float, pair_id: int | None = None) -> int:
    """Samples stored with ``asof >= since`` (of one pair, or of all)."""
    query = select(func.count()).where(ratio_samples.c.asof >= since)
    if pair_id is not None:
        query = query.where(ratio_samples.c.pair_id == pair_id)
    async with live.services.database.engine.connect() as conn:
        return int(await conn.scalar(query) or 0)


async def pass_rounds(live: LiveService, rounds: int) -> None:
    """Wait until the sampler has woken ``rounds`` more times and its samples are written."""
    ratios = live.services.ratios
    target = ratios.sample_rounds + rounds
    await eventually(
        lambda: ratios.sample_rounds >= target, timeout=30, message=f"{rounds} sampler rounds"
    )
    await live.services.writer.flush()


async def pair_id_of(live: LiveService, name: str) -> int:
    pairs = await live.services.repository.list_pairs(active_only=True)
    return next(pair.id for pair in pairs if pair.name == name)


async def test_stopped_feed_stores_no_sample_and_start_resumes_sampling(
    make_settings: Callable[..., Settings],
) -> None:
    """After POST /cotizaciones/detener no sample is stored at all; POST iniciar resumes."""
    # A long staleness limit: the frozen quotes would count as fresh for a minute.
    async with live_service(make_settings(quote_stale_after=300.0)) as live, live.http() as http:
        services = live.services
        await eventually(
            lambda: stored_since(live, 0.0), timeout=30, message="samples of the running feed"
        )
        assert (await http.post("/cotizaciones/detener")).status_code == 200
        stopped_at = services.feed.stopped_at
        assert stopped_at is not None and services.feed.live_since is None

        await pass_rounds(live, QUIET_ROUNDS)
        assert await stored_since(live, stopped_at) == 0
        assert services.ratios.sampling_paused is True

        assert (await http.post("/cotizaciones/iniciar")).status_code == 200
        await eventually(lambda: services.feed.live_since is not None, message="feed connected")
        live_since = services.feed.live_since
        assert live_since is not None and live_since > stopped_at
        await eventually(
            lambda: stored_since(live, live_since), timeout=30, message="sampling resumed"
        )
        assert await stored_since(live, stopped_at) == await stored_since(live, live_since)
        assert services.ratios.sampling_paused is False


async def test_quotes_from_before_a_restart_are_never_sampled(
    make_settings: Callable[..., Settings],
) -> None:
    """Restarted without AL30D, the MEP pair gets no sample from AL30D's pre-restart quote."""
    async with live_service(make_settings(quote_stale_after=300.0)) as live, live.http() as http:
        services = live.services
        mep, gd = await pair_id_of(live, "AL30-AL30D"), await pair_id_of(live, "GD30-GD30D")
        await eventually(
            lambda: stored_since(live, 0.0, mep), timeout=30, message="MEP samples before"
        )
        assert services.cache.get(AL30D) is not None

        response = await http.post(
            "/cotizaciones/iniciar", json={"instrumentos": [AL30, GD30, GD30D]}
        )
        assert response.status_code == 200, response.text
        await eventually(lambda: services.feed.live_since is not None, message="feed connected")
        live_since = services.feed.live_since
        assert live_since is not None
        # Read AL30D's quote once the new connection is up: until the old session stopped,
        # its ticks could still replace it.
        old_al30d = services.cache.get(AL30D)
        assert old_al30d is not None
        await eventually(
            lambda: stored_since(live, live_since, gd), timeout=30, message="GD30 samples after"
        )
        await pass_rounds(live, QUIET_ROUNDS)

        # AL30D's quote is still cached and well within the staleness limit, but it was
        # received before the current connection: it is not live, so MEP is not sampled.
        assert services.cache.get(AL30D) == old_al30d
        assert old_al30d.recv_ts < live_since
        assert await stored_since(live, live_since, mep) == 0
        assert await stored_since(live, live_since, gd) >= QUIET_ROUNDS


@pytest.mark.parametrize(
    ("age", "first_round"),
    [
        pytest.param(1.25, None, id="overdue: at once, then the grid"),
        pytest.param(0.25, 1, id="due later: on the grid"),
        pytest.param(1.8, 2, id="overdue, next point near: on the grid"),
    ],
)
async def test_a_new_cluster_term_keeps_the_leaders_sampling_cadence(
    make_settings: Callable[..., Settings], age: float, first_round: int | None
) -> None:
    """A follower elected leader samples on the previous leader's grid (its last sample +
    k x interval); a round the takeover left overdue is taken as soon as the legs are live,
    unless the grid's next point is under half an interval away."""
    interval = 2.0
    async with live_service(make_settings(ratio_sample_interval=interval)) as live:
        ratios = live.services.ratios
        ratios.sampling = False  # a follower: samples arrive from the leader
        taken: list[float] = []
        ratios.add_sample_listener(lambda sample: taken.append(sample.asof))
        await eventually(lambda: live.services.feed.live_since is not None, message="feed live")
        last = time.time() - age * interval  # the leader's last round
        flat = RatioValues(1.0, 1.0, 1.0, 1.0)
        for pair_id in ratios.pairs:
            assert ratios.apply_sample(RatioSample(pair_id, last, flat, Indicators()))
        resumed = time.time()
        ratios.resume_sampling()
        await eventually(lambda: len(set(taken)) >= 2, timeout=3 * interval, message="2 rounds")
        rounds = sorted(set(taken))[:2]
        if first_round is None:
            assert rounds[0] - resumed < 0.5  # the overdue round, at once: the feed is live
            grid = [last + 2 * interval]
            rounds = rounds[1:]
        else:
            grid = [last + first_round * interval, last + (first_round + 1) * interval]
        assert rounds == pytest.approx(grid, abs=0.5), (rounds, grid)
        assert taken.count(rounds[0]) == len(ratios.pairs)  # every pair in each round


async def test_one_pair_failing_its_indicators_costs_the_others_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    """A pair whose indicators raise is left out of the round; every other pair is sampled."""
    async with live_service(make_settings()) as live:
        ratios = live.services.ratios
        await eventually(lambda: ratios.samples_taken > 0, timeout=30, message="first samples")
        broken = next(iter(ratios.pairs))
        window = ratios._windows[broken]

        def overflow(values: RatioValues) -> Indicators:
            raise OverflowError("numerical result out of range")

        window.push = overflow  # type: ignore[method-assign]
        taken: list[int] = []
        ratios.add_sample_listener(lambda sample: taken.append(sample.pair_id))
        await pass_rounds(live, 2)
        assert taken and broken not in taken
        assert set(taken) == set(ratios.pairs) - {broken}
