import torch

from smec_compress.model.memory import CrossBatchMemory


def test_fifo_order_and_capacity():
    mem = CrossBatchMemory(size=5, dim=2)
    for start in (0, 3, 6):
        ids = torch.arange(start, start + 3)
        mem.enqueue(torch.stack([ids.float(), -ids.float()], 1), ids)
    vectors, ids = mem.stored()
    assert len(mem) == 5
    assert sorted(ids.tolist()) == [4, 5, 6, 7, 8]  # 0..3 (oldest) evicted
    assert vectors[:, 0].tolist() == ids.float().tolist()  # each slot keeps its vector with its id


def test_batch_larger_than_memory_keeps_newest():
    mem = CrossBatchMemory(size=3, dim=1)
    mem.enqueue(torch.arange(7.0)[:, None], torch.arange(7))
    assert sorted(mem.stored()[1].tolist()) == [4, 5, 6]


def test_select_matches_brute_force_and_excludes():
    g = torch.Generator().manual_seed(0)
    mem = CrossBatchMemory(size=50, dim=8)
    vecs = torch.randn(60, 8, generator=g)
    mem.enqueue(vecs[:30], torch.arange(30))
    mem.enqueue(vecs[30:], torch.arange(30, 60))  # wraps: ids 10..59 stored
    anchors = torch.randn(6, 8, generator=g)
    exclude = torch.tensor([[12], [-1], [59], [-1], [30], [11]])
    slots, sims = mem.select(anchors, 4, exclude=exclude)
    stored_vecs, stored_ids = mem.stored()
    for a in range(6):  # brute-force reference
        cand = [(float(anchors[a] @ vecs[i]), i) for i in range(10, 60) if i != exclude[a, 0]]
        best = [i for _, i in sorted(cand, reverse=True)[:4]]
        assert stored_ids[slots[a]].tolist() == best
        assert torch.allclose(sims[a], anchors[a] @ stored_vecs[slots[a]].T)


def test_select_marks_missing_entries_invalid():
    mem = CrossBatchMemory(size=10, dim=2)
    mem.enqueue(torch.eye(2), torch.tensor([0, 1]))
    slots, sims = mem.select(torch.eye(2), 2, exclude=torch.tensor([[0], [1]]))
    assert torch.isfinite(sims).sum(1).tolist() == [1, 1]


def test_draw_takes_k_distinct_entries_from_the_pool_and_varies():
    g = torch.Generator().manual_seed(1)
    mem = CrossBatchMemory(size=100, dim=8)
    mem.enqueue(torch.randn(100, 8, generator=g), torch.arange(100))
    anchors = torch.randn(5, 8, generator=g)
    exclude = torch.tensor([[3], [-1], [-1], [7], [-1]])
    pool_slots, _ = mem.select(anchors, 20, exclude)
    seen = set()
    for _ in range(10):
        slots, top = mem.draw(anchors, 4, 20, g, exclude)
        assert slots.shape == (5, 4) and torch.isfinite(top).all()
        for row, pool in zip(slots.tolist(), pool_slots.tolist()):
            assert len(set(row)) == 4 and set(row) <= set(pool)
        seen |= set(map(tuple, slots.sort(dim=1).values.tolist()))
    assert len(seen) > 5  # not always the same (nearest) four
    nearest, _ = mem.draw(anchors, 4, 0, g, exclude)  # pool <= k: exactly the top-k
    assert torch.equal(nearest, mem.select(anchors, 4, exclude)[0])
