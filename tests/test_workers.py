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
