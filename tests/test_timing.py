import time

from colretrieve.timing import collect, stage


def test_stages_are_recorded_only_inside_collect():
    with stage("outside"):
        pass
    with collect() as record:
        with stage("first_stage"):
            time.sleep(0.01)
        for _ in range(2):
            with stage("rerank"):
                time.sleep(0.005)
    assert set(record) == {"first_stage", "rerank"}
    assert record["first_stage"] >= 9 and record["rerank"] >= 9
    with collect() as again:
        pass
    assert again == {}
