from indexer.ordered import ordered_map
from indexer.workers import RenderPool
from tests.crashing_worker import square_or_die


def test_results_come_back_in_order_and_a_crash_blames_only_its_task():
    pool = RenderPool(2)
    try:
        values = [1, 2, -3, 4, 5, -6, 7]
        results = list(ordered_map(pool, square_or_die, ((v, (v,)) for v in values), window=3))
    finally:
        pool.shutdown()
    assert [key for key, _ in results] == values
    assert [result for _, result in results] == [1, 4, None, 16, 25, None, 49]


def test_at_most_window_tasks_are_in_flight_so_memory_stays_bounded():
    pulled = 0

    def tasks():
        nonlocal pulled
        for value in range(40):
            pulled += 1
            yield value, (value,)

    pool = RenderPool(2)
    try:
        consumed = 0
        for _ in ordered_map(pool, square_or_die, tasks(), window=4):
            consumed += 1
            # Pages of a 10,000-page PDF are rendered a window at a time, not all up front.
            assert pulled - consumed <= 4
    finally:
        pool.shutdown()
    assert consumed == 40
