"""A sentence-transformers model that emits a head's compressed vectors: the model as it was,
then the head's collapsed map as a ``Dense`` layer (identity activation) and a ``Normalize``
layer (none for a head that keeps norms), so ``SentenceTransformer(saved).encode(texts)`` gives
``head.transform(vectors, dim)``."""

from __future__ import annotations

import copy

import numpy as np

from ..errors import SmecError


def with_head(model, head, dim: int):
    """A copy of ``model`` (a ``SentenceTransformer``) ending in ``head`` at ``dim``."""
    import torch
    from sentence_transformers.models import Dense, Normalize  # the path every release since 2.x has

    head.check_dim(dim)
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    out_dim = get_dim()
    if out_dim is not None and out_dim != head.input_dim_:
        raise SmecError(f"the model outputs {out_dim} dims but this head was trained on {head.input_dim_}")
    w, b = head.weights_[dim]
    dense = Dense(head.input_dim_, dim, bias=True, activation_function=torch.nn.Identity(),
                  init_weight=torch.from_numpy(np.ascontiguousarray(w.T)), init_bias=torch.from_numpy(b.copy()))
    new = copy.deepcopy(model)
    new.append(dense.to(next(new.parameters()).device))
    if head.config_.normalize:
        new.append(Normalize())
    return new


def save_with_head(head, dim: int, out_dir, *, model_path=None, force: bool = False, overwrite: bool = False):
    """Save the model at ``model_path`` (default: the bundled all-MiniLM-L6-v2) ending in ``head``
    at ``dim`` as a sentence-transformers folder ``out_dir``, written atomically. A model whose
    files differ from the embedder the head was fitted on is refused unless ``force`` (its
    dimension always), before the model is loaded."""
    from ..data.atomic import atomic_dir
    from ..data.embed import Embedder

    head.check_dim(dim, what="--dim")
    embedder = Embedder(model_path)
    head.check_input(head.input_dim_, embedder.fingerprint, force)  # the fingerprint: no model load needed
    model = with_head(embedder.model, head, dim)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        model.save(str(tmp))
    return out_dir
