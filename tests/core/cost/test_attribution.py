"""Attribution scopes: nesting, asyncio tasks, threads, and filling ledger rows."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from tollway.core.cost.attribution import (
    AttributedThreadPoolExecutor,
    Attribution,
    attribute,
    current_attribution,
    propagate,
)
from tollway.core.cost.records import CallRecord


def test_no_scope_means_an_empty_attribution() -> None:
    assert current_attribution() == Attribution()
    assert not current_attribution()
    assert current_attribution().as_dict() == {}


def test_inner_scopes_extend_outer_ones_and_restore_on_exit() -> None:
    with attribute(org="acme", project="search", tags={"env": "prod", "team": "a"}):
        with attribute(user="u1", project="ranking", tags={"team": "b"}, run_id="r-7"):
            inner = current_attribution()
            assert inner.org == "acme"
            assert inner.project == "ranking"
            assert inner.user == "u1"
            assert dict(inner.tags) == {"env": "prod", "team": "b"}
            assert dict(inner.extra) == {"run_id": "r-7"}
        outer = current_attribution()
        assert (outer.project, outer.user, dict(outer.tags)) == (
            "search", None, {"env": "prod", "team": "a"}
        )
    assert current_attribution() == Attribution()


def test_scope_is_restored_when_the_body_raises() -> None:
    with pytest.raises(RuntimeError), attribute(org="acme"):
        raise RuntimeError("boom")
    assert current_attribution().org is None


def test_none_values_leave_the_outer_value() -> None:
    with attribute(org="acme", user="u1"), attribute(user=None, project="p"):
        assert (current_attribution().org, current_attribution().user) == ("acme", "u1")


def test_tags_accept_key_value_strings_and_bare_names() -> None:
    with attribute(tags=["env=prod", "experiment"]):
        assert dict(current_attribution().tags) == {"env": "prod", "experiment": "true"}


def test_merge_lets_the_other_side_win_per_field_and_merges_tags() -> None:
    a = Attribution.of(org="acme", user="u1", tags={"x": "1", "y": "1"}, run_id="r1")
    b = a.merge({"user": "u2", "tags": {"y": "2"}, "task": "t"})
    assert (b.org, b.user) == ("acme", "u2")
    assert dict(b.tags) == {"x": "1", "y": "2"}
    assert dict(b.extra) == {"run_id": "r1", "task": "t"}
    assert (a.user, dict(a.tags)) == ("u1", {"x": "1", "y": "1"})  # a is unchanged


def test_as_dict_lists_only_set_fields_and_round_trips() -> None:
    a = Attribution.of(org="acme", framework="langgraph", tags={"env": "prod"}, run_id="r1")
    assert a.as_dict() == {
        "org": "acme", "framework": "langgraph", "tags": {"env": "prod"}, "run_id": "r1"
    }
    assert Attribution.of(a.as_dict()) == a


def test_attribution_is_immutable() -> None:
    a = Attribution.of(org="acme", tags={"env": "prod"})
    with pytest.raises(AttributeError):
        a.org = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        a.tags["env"] = "dev"  # type: ignore[index]


def test_fill_sets_the_record_columns_and_keeps_unset_ones() -> None:
    record = CallRecord(time=datetime.now(UTC), framework="crewai", tags={"a": "1"})
    Attribution.of(org="acme", user="u1", agent="researcher", tags={"b": "2"},
                   run_id="r1").fill(record)
    assert (record.org, record.user, record.agent, record.framework) == (
        "acme", "u1", "researcher", "crewai"
    )
    assert record.tags == {"a": "1", "b": "2"}
    assert record.attribution == {"run_id": "r1"}
    assert record.project is None


async def test_async_with_scopes_and_tasks_inherit_the_scope_they_start_in() -> None:
    seen: dict[str, Attribution] = {}

    async def worker(name: str) -> None:
        await asyncio.sleep(0)
        async with attribute(agent=name):
            await asyncio.sleep(0.01)
            seen[name] = current_attribution()

    async with attribute(org="acme", project="p"):
        await asyncio.gather(worker("a"), worker("b"))
        task = asyncio.create_task(worker("c"))
    await task  # created inside the scope: keeps it after the scope closed
    for name in "abc":
        assert (seen[name].org, seen[name].project, seen[name].agent) == ("acme", "p", name)
    assert current_attribution() == Attribution()


async def test_concurrent_tasks_do_not_see_each_others_scopes() -> None:
    barrier = asyncio.Barrier(2)
    seen = {}

    async def worker(user: str) -> None:
        async with attribute(user=user):
            await barrier.wait()
            seen[user] = current_attribution().user

    await asyncio.gather(worker("u1"), worker("u2"))
    assert seen == {"u1": "u1", "u2": "u2"}


def test_plain_threads_start_empty_but_propagate_carries_the_scope() -> None:
    seen: dict[str, Attribution] = {}

    def work(name: str) -> None:
        seen[name] = current_attribution()

    with attribute(org="acme", tags={"env": "prod"}):
        plain = threading.Thread(target=work, args=("plain",))
        carried = threading.Thread(target=propagate(work), args=("carried",))
        plain.start(), carried.start()
        plain.join(), carried.join()
    assert seen["plain"] == Attribution()
    assert seen["carried"].org == "acme" and dict(seen["carried"].tags) == {"env": "prod"}


def test_attributed_executor_runs_tasks_in_the_submitters_scope() -> None:
    with AttributedThreadPoolExecutor(max_workers=2) as pool:
        with attribute(user="u1"):
            first = pool.submit(lambda: current_attribution().user)
        with attribute(user="u2"):
            second = list(pool.map(lambda _: current_attribution().user, range(3)))
        assert first.result() == "u1"
        assert second == ["u2"] * 3
    with ThreadPoolExecutor(max_workers=1) as plain, attribute(user="u3"):
        assert plain.submit(lambda: current_attribution().user).result() is None


async def test_run_in_executor_and_to_thread_keep_the_scope() -> None:
    loop = asyncio.get_running_loop()
    with AttributedThreadPoolExecutor(max_workers=1) as pool:
        async with attribute(project="p1"):
            via_pool = await loop.run_in_executor(pool, lambda: current_attribution().project)
            via_to_thread = await asyncio.to_thread(lambda: current_attribution().project)
    assert via_pool == via_to_thread == "p1"


def test_one_scope_object_can_be_entered_again_after_exit() -> None:
    scope = attribute(org="acme")
    with scope:
        assert current_attribution().org == "acme"
    with scope, attribute(user="u"):
        assert (current_attribution().org, current_attribution().user) == ("acme", "u")
    assert current_attribution().org is None
