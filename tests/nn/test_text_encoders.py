"""The weight-free hashed word encoder (``text_encoder: words``)."""

from __future__ import annotations

import torch

from shapegen.nn.text_encoders import HashWordEncoder, build_text_encoder, split_words


def test_words_are_lower_case_without_punctuation_and_keep_hyphens():
    assert split_words("Table, four-legged; ROUND top!") == ["table", "four-legged", "round", "top"]


def test_same_words_same_states_and_padding_masked():
    enc = build_text_encoder("words")
    assert isinstance(enc, HashWordEncoder) and enc.dim == 64
    out = enc(["a round table", "Table,", ""])
    assert out.hidden.shape == (3, 4, 64)  # a start token, then the words
    assert out.mask.tolist() == [[True] * 4, [True, True, False, False], [True, False, False, False]]
    assert torch.all(out.hidden[~out.mask] == 0)
    # A fresh encoder rebuilds the same states: nothing needs to be stored in a checkpoint.
    assert torch.allclose(HashWordEncoder()(["a round table"]).hidden, out.hidden[:1], atol=1e-5)
    # "table," is the word "table".
    assert torch.allclose(enc(["table"]).hidden, out.hidden[1:2, :2], atol=1e-5)  # the same up to the batch's matmul order


def test_distinct_words_are_nearly_orthogonal_and_neighbours_change_a_token():
    enc = HashWordEncoder()
    words = ["lamp", "a", "chair", "rail", "four", "desk", "sofa", "three"]  # pairs that share a slot of the tiny CLIP's hash
    v = torch.nn.functional.normalize(torch.stack([enc.word_vector(w) for w in words]), dim=-1)
    cos = v @ v.T - torch.eye(len(words))
    assert cos.abs().max() < 0.6  # 64 random dimensions: |cos| has a standard deviation of 1/8
    legs, top = enc(["round legs"]).hidden[0, 1], enc(["round top"]).hidden[0, 1]
    assert not torch.allclose(legs, top)
    # Without the neighbour term the state of "round" would be e(round) in both.
    assert torch.allclose(legs - top, (enc.word_vector("legs") - enc.word_vector("top")) @ enc.mix[1], atol=1e-5)
