import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from reasonrl.errors import UserError
from reasonrl.model.tiny import PRESETS, build_model, load_model, num_params


def test_tokenizer_round_trips_and_splits_digits(world_tokenizer):
    tok = world_tokenizer
    text = "Ana has 1234 pens. 12 * 3 = 36. Wait, \\boxed{36}. Ünïcødé ✓"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    pieces = [tok.decode([i]) for i in tok("1234", add_special_tokens=False)["input_ids"]]
    assert pieces == ["1", "2", "3", "4"]


def test_tokenizer_saves_and_loads_with_chat_template(world_tokenizer, tmp_path):
    world_tokenizer.save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    text = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text == "<|user|>What is 2 + 2?\n<|assistant|>"
    assert tok("x")["input_ids"] == world_tokenizer("x")["input_ids"]


def test_presets_have_the_advertised_sizes(world_tokenizer):
    tiny = num_params(build_model("tiny", world_tokenizer))
    small = num_params(build_model("small", world_tokenizer))
    assert 0.5e6 < tiny < 1.5e6
    assert 7e6 < small < 13e6
    assert set(PRESETS) >= {"tiny", "small"}


def test_model_save_load_gives_identical_logits(world_tokenizer, tmp_path):
    model = build_model("micro", world_tokenizer, seed=1)
    model.save_pretrained(tmp_path)
    world_tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    loaded, tok = load_model(tmp_path)
    ids = torch.tensor([tok("1 + 2 = 3.")["input_ids"]])
    with torch.no_grad():
        ref = model(ids).logits
        assert torch.equal(ref, again(ids).logits)
        assert torch.equal(ref, loaded(ids).logits)


def test_seed_controls_initialisation(world_tokenizer):
    a = build_model("micro", world_tokenizer, seed=1).state_dict()
    b = build_model("micro", world_tokenizer, seed=1).state_dict()
    c = build_model("micro", world_tokenizer, seed=2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_qwen2_arch_builds(world_tokenizer):
    m = build_model("micro", world_tokenizer, arch="qwen2")
    assert type(m).__name__ == "Qwen2ForCausalLM"


def test_loading_a_non_model_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="not a Hugging Face model directory"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="no tokenizer files"):
        load_model(tmp_path)
