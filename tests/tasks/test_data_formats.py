"""`data.source` in every format Hugging Face `datasets` reads, against the JSONL loader on the same real rows
(AMC 2023 from shared/data): same records, lazy memory-mapped tables, no network for local paths, chat messages
through the chat template, and bad input as one line naming the source and the column."""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from reasonrl.config import load_config
from reasonrl.errors import UserError
from reasonrl.tasks import hf_data
from reasonrl.tasks.datasets import data_root
from reasonrl.tasks.prompts import record_prompt
from reasonrl.tasks.sources import heldout_is_train, load_split

ROOT = Path(__file__).resolve().parents[2]
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(autouse=True)
def hf_cache(tmp_path_factory, monkeypatch):
    """parquet / JSON / CSV files are converted into the `datasets` cache: keep it under tmp."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.getbasetemp() / "hf_cache"))


@pytest.fixture(scope="module")
def amc_rows() -> list[dict]:
    """AMC 2023 as stored: id (int), question, answer (floats such as 27.0), problem, url."""
    return [json.loads(line) for line in (data_root() / "amc23" / "test.jsonl").read_text().splitlines()]


def _write_all(rows: list[dict], d: Path) -> dict[str, Path]:
    """The same rows in every format, by name."""
    d.mkdir(parents=True, exist_ok=True)
    ds = datasets.Dataset.from_list(rows)
    table = pa.Table.from_pylist(rows)
    out = {"jsonl": d / "amc.jsonl", "parquet": d / "amc.parquet", "json_array": d / "amc.json",
           "json_lines": d / "lines" / "amc.json", "csv": d / "amc.csv", "arrow_stream": d / "amc.arrow",
           "arrow_ipc_file": d / "ipc" / "amc.arrow", "saved": d / "amc_saved", "saved_dict": d / "amc_dict"}
    out["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds.to_parquet(str(out["parquet"]))
    out["json_array"].write_text(json.dumps(rows))
    out["json_lines"].parent.mkdir()
    out["json_lines"].write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds.to_csv(str(out["csv"]), index=False)
    with ipc.new_stream(str(out["arrow_stream"]), table.schema) as w:
        w.write_table(table)
    out["arrow_ipc_file"].parent.mkdir()
    with ipc.new_file(str(out["arrow_ipc_file"]), table.schema) as w:
        w.write_table(table)
    ds.save_to_disk(str(out["saved"]))
    datasets.DatasetDict(train=ds, test=ds.select(range(5))).save_to_disk(str(out["saved_dict"]))
    return out


@pytest.fixture(scope="module")
def files(amc_rows, tmp_path_factory):
    return _write_all(amc_rows, tmp_path_factory.mktemp("formats"))


def _cfg(source, *more: str):
    return load_config(None, [f"--data.source={source}", "--data.prompt_field=question", *more]).data


FORMATS = ["parquet", "json_array", "json_lines", "csv", "arrow_stream", "arrow_ipc_file", "saved", "saved_dict"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_the_jsonl_records(files, fmt, amc_rows):
    want = load_split(_cfg(files["jsonl"]), "train")
    got = load_split(_cfg(files[fmt]), "train")
    assert isinstance(got, hf_data.Records) and len(got) == len(want) == 40
    # the ids are the rows' own (AMC rows carry an integer id); every other field is the JSONL loader's
    assert list(got) == want
    assert [got[i] for i in range(len(got))] == want
    assert want[0]["answer"] == "27" and want[0]["response"] is None and "problem" in want[0]  # 27.0 -> "27"


def test_rows_without_ids_are_named_by_row_and_iteration_crosses_read_chunks(files, amc_rows, tmp_path, monkeypatch):
    monkeypatch.setattr(hf_data, "_ROWS_PER_READ", 7)  # 40 rows: 6 chunks, the last one short
    no_id = [{k: v for k, v in r.items() if k != "id"} for r in amc_rows]
    path = _write_all(no_id, tmp_path)["parquet"]
    records = load_split(_cfg(path), "train")
    assert [r["id"] for r in records] == [f"amc:{i}" for i in range(40)]  # rows count from 0, like dataset[i]
    assert list(records) == [records[i] for i in range(40)]
    assert records[-1] == records[39] and records[38:] == [records[38], records[39]]
    assert records[-1]["prompt"] == amc_rows[-1]["question"]
    with pytest.raises(IndexError):
        records[40]


def test_tables_stay_memory_mapped(files):
    """What keeps a million rows out of Python lists: the table is mapped, a record is built when it is read."""
    for fmt in ("parquet", "csv", "arrow_stream", "saved"):
        records = load_split(_cfg(files[fmt]), "train")
        assert isinstance(records.table.data, datasets.table.MemoryMappedTable), fmt
    assert isinstance(load_split(_cfg(files["parquet"]), "train", num=3), list)  # `num` asks for a list


def test_splits_of_a_saved_dataset_dict(files, amc_rows):
    d = files["saved_dict"]
    assert len(load_split(_cfg(d), "train")) == 40
    assert len(load_split(_cfg(d), "test")) == 5  # data.test_split = "test" of the source itself
    assert [r["id"] for r in load_split(_cfg(d, "--data.test_split=train"), "test")][-1] == str(amc_rows[-1]["id"])
    assert not heldout_is_train(_cfg(d))  # it has a test split
    assert heldout_is_train(_cfg(files["parquet"]))  # a file is one table: the trainers warn
    # test_source in another format, with its own split
    cfg = _cfg(files["parquet"], f"--data.test_source={d}", "--data.test_split=test")
    assert len(load_split(cfg, "test")) == 5 and not heldout_is_train(cfg)
    with pytest.raises(UserError, match=r"amc_dict: no split 'validation' \(splits: train, test\); set data.split"):
        load_split(_cfg(d, "--data.split=validation"), "train")


def test_local_sources_never_touch_the_network(files, monkeypatch):
    """A local path must not reach the hub (`datasets.load_dataset` would ping a download counter even for a local
    parquet file). Every connection attempt is recorded and refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:1])
        raise OSError("network disabled in this test")

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)  # as on a machine where the user set nothing
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for fmt in FORMATS:
        assert len(load_split(_cfg(files[fmt]), "test")) in (5, 40)
    with pytest.raises(UserError, match=r"'AI-MO/aimo' is neither a known name .* nor a file or directory "
                                        r"\(a hub dataset is named hub:owner/name\)"):
        load_split(_cfg("AI-MO/aimo"), "train")  # a hub-like name without hub: is not looked up
    assert attempts == []


def test_hub_source_honours_hf_datasets_offline(tmp_path):
    """`hub:` is the one source that may download; with HF_DATASETS_OFFLINE=1 and nothing cached it is one line,
    at once (a lookup on this network-less machine would hang or fail slowly)."""
    code = ("from reasonrl.config import load_config\nfrom reasonrl.errors import UserError\n"
            "from reasonrl.tasks.sources import load_split\n"
            "try:\n    load_split(load_config(None, ['--data.source=hub:nobody/no-such-set:main']).data, 'train')\n"
            "except UserError as e:\n    print(e)\n")
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("data.source hub:nobody/no-such-set:main (split 'train'): ")
    assert "offline" in lines[0].lower(), lines[0]


# ---------------------------------------------------------------------------------------------------- chat format


@pytest.fixture(scope="module")
def chat_tokenizer(world_tokenizer):
    tok = copy.deepcopy(world_tokenizer)
    tok.chat_template = CHAT_TEMPLATE
    return tok


CONVERSATION = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 2 + 3?"},
                {"role": "assistant", "content": "2 + 3 = 5. The answer is 5."}]


def test_messages_column_trl_format(tmp_path, chat_tokenizer):
    """TRL's conversational format: the final assistant turn is the response, the turns before it the prompt."""
    rows = [{"messages": CONVERSATION, "answer": 5},
            {"messages": [{"role": "user", "content": "What is 1 + 1?"}], "answer": 2}]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "chat.parquet"))
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for path in (tmp_path / "chat.parquet", tmp_path / "chat.jsonl"):
        cfg = load_config(None, [f"--data.source={path}"]).data
        first, second = load_split(cfg, "train", require=("prompt",))
        assert first["prompt_messages"] == CONVERSATION[:2] and first["prompt"] == "What is 2 + 3?"
        assert first["response"] == "2 + 3 = 5. The answer is 5." and first["answer"] == "5"
        assert second["response"] is None and second["answer"] == "2" and "messages" not in second
        # the model sees the system turn too, through the chat template with a generation prompt
        assert record_prompt(chat_tokenizer, first) == ("<|system|>Answer briefly.\n<|user|>What is 2 + 3?\n"
                                                        "<|assistant|>")
        with pytest.raises(UserError, match=r"data.prompt_template '\{prompt\} =' formats text prompts, but the "
                                            "data has chat messages"):
            record_prompt(chat_tokenizer, first, "{prompt} =")


def test_verl_format_chat_prompt_and_nested_answer(tmp_path, chat_tokenizer, world_tokenizer):
    """verl's parquet: `prompt` is a chat list, the answer sits in `reward_model.ground_truth`; the other columns
    reach the record as they are (a reward plug-in may read them)."""
    row = {"data_source": "openai/gsm8k", "prompt": [{"role": "user", "content": "Ana has 3 pens..."}],
           "ability": "math", "reward_model": {"style": "rule", "ground_truth": "72"},
           "extra_info": {"split": "train", "index": 7}}
    datasets.Dataset.from_list([row]).to_parquet(str(tmp_path / "verl.parquet"))
    cfg = load_config(None, [f"--data.source={tmp_path / 'verl.parquet'}",
                             "--data.answer_field=reward_model.ground_truth"]).data
    (record,) = load_split(cfg, "train")
    assert record["answer"] == "72" and record["prompt"] == "Ana has 3 pens..." and record["id"] == "verl:0"
    assert record["reward_model"] == {"style": "rule", "ground_truth": "72"} and record["extra_info"]["index"] == 7
    assert record_prompt(chat_tokenizer, record) == "<|user|>Ana has 3 pens...\n<|assistant|>"
    plain = copy.deepcopy(world_tokenizer)
    plain.chat_template = None
    with pytest.raises(UserError, match="chat messages need a tokenizer with a chat template"):
        record_prompt(plain, record)


def test_sft_encodes_chat_records_through_the_template(tmp_path, chat_tokenizer):
    from reasonrl.train.data import encode_records

    datasets.Dataset.from_list([{"messages": CONVERSATION}]).to_parquet(str(tmp_path / "sft.parquet"))
    records = load_split(load_config(None, [f"--data.source={tmp_path / 'sft.parquet'}"]).data, "train",
                         require=("prompt", "response"))
    (ex,) = encode_records(chat_tokenizer, records, template="", max_len=512)
    prompt_ids = chat_tokenizer(chat_tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False,
                                                                   add_generation_prompt=True),
                                add_special_tokens=False)["input_ids"]
    response_ids = chat_tokenizer(CONVERSATION[2]["content"], add_special_tokens=False)["input_ids"]
    assert ex.ids == prompt_ids + response_ids + [chat_tokenizer.eos_token_id]
    assert ex.num_prompt == len(prompt_ids)


# ---------------------------------------------------------------------------------------------------- bad input


def _parquet(path: Path, rows: list[dict] | None = None, table: pa.Table | None = None) -> Path:
    import pyarrow.parquet as pq

    pq.write_table(table if table is not None else pa.Table.from_pylist(rows), str(path))
    return path


def _bad_sources(d: Path) -> dict[str, tuple[Path, list[str]]]:
    """name -> (source, overrides)."""
    good = {"question": "What is 1 + 1?", "answer": "2"}
    d.mkdir(exist_ok=True)
    (d / "not_saved").mkdir()
    (d / "corrupt.parquet").write_bytes(b"PAR1" + b"\x00" * 64)
    (d / "text.csv").write_text('question,messages\nWhat is 1 + 1?,"[{\'role\': \'user\'}]"\n')
    datasets.DatasetDict(train=datasets.Dataset.from_list([good])).save_to_disk(str(d / "only_train"))
    schema = pa.schema([("question", pa.string()), ("answer", pa.string())])
    datasets.Dataset(schema.empty_table()).save_to_disk(str(d / "only_empty"))  # no data files at all
    (d / "header_only.csv").write_text("question,answer\n")
    (d / "blank.json").write_text("")
    for name, file, text in [("index_not_object", "dataset_dict.json", "[1]"),
                             ("index_splits_not_list", "dataset_dict.json", '{"splits": 3}'),
                             ("state_not_object", "train/state.json", "[]")]:
        shutil.copytree(d / "only_train", d / name)
        (d / name / file).write_text(text)
    return {
        "missing_file": (d / "absent.parquet", []),
        "missing_column": (_parquet(d / "no_answer.parquet", [{"question": "q"}]), []),
        "empty_split": (d / "only_empty", []),
        "empty_file": (_parquet(d / "empty.parquet", table=schema.empty_table()), []),
        "empty_csv": (d / "header_only.csv", []),
        "empty_json": (d / "blank.json", []),
        "wrong_type": (_parquet(d / "list_answer.parquet", [{"question": "q", "answer": [1, 2]}]), []),
        "null_prompt": (_parquet(d / "null.parquet", [good, good, {"question": None, "answer": "1"}]), []),
        "blank_prompt": (_parquet(d / "blank.parquet", [good, {"question": "  \n", "answer": "1"}]), []),
        "nan_answer": (_parquet(d / "nan.parquet", [{"question": "q", "answer": float("nan")}]), []),
        "no_split": (d / "only_train", []),
        "not_saved": (d / "not_saved", []),
        "index_not_object": (d / "index_not_object", []),
        "index_splits_not_list": (d / "index_splits_not_list", []),
        "state_not_object": (d / "state_not_object", []),
        "corrupt": (d / "corrupt.parquet", []),
        "messages_not_chat": (d / "text.csv", ["--data.prompt_field=prompt"]),
    }


BAD = {  # name -> what the one line says, after the source's name
    "missing_file": "absent.parquet: no such file",
    "missing_column": "no_answer.parquet: no column 'answer' (data.answer_field); columns: question",
    "empty_split": "only_empty: no rows (the split is empty)",
    "empty_file": "empty.parquet: no rows (the file is empty)",
    "empty_csv": "header_only.csv: no rows (the file is empty)",
    "empty_json": "blank.json: no rows (the file is empty)",
    "wrong_type": "list_answer.parquet: column 'answer' (data.answer_field) must hold text or numbers, got List(",
    "null_prompt": "null.parquet: row 2: column 'question' is missing (null)",
    "blank_prompt": "blank.parquet: row 1: column 'question' is blank",
    "nan_answer": "nan.parquet: row 0: column 'answer' is not a finite number",
    "no_split": "only_train: no split 'test' (splits: train)",
    "not_saved": "not_saved: a directory, but not one written by Dataset.save_to_disk",
    "index_not_object": "index_not_object/dataset_dict.json: expected a JSON object, got list",
    "index_splits_not_list": "index_splits_not_list/dataset_dict.json: not a DatasetDict index (\"splits\" must be",
    "state_not_object": "state_not_object/train/state.json: expected a JSON object, got list",
    "corrupt": "corrupt.parquet: cannot be read as parquet (",
    "messages_not_chat": "text.csv: column 'messages' must hold chat messages",
}


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return _bad_sources(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_one_line_naming_source_and_column(bad, name):
    source, more = bad[name]
    split = "test" if name == "no_split" else "train"
    with pytest.raises(UserError) as e:
        load_split(_cfg(source, *more), split)
    assert BAD[name] in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(("messages", "says"), [
    ([{"role": "assistant", "content": "5"}], "row 0: chat messages have no user turn before the response"),
    ([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "row 0: chat message 0 must be an object"),
    ([{"role": "user", "content": " "}], "row 0: the last user message is empty"),
])
def test_bad_chat_rows_are_named_when_read(tmp_path, messages, says):
    path = tmp_path / "chat.jsonl"  # JSON holds what a typed table cannot (content parts); parquet checks the same
    path.write_text(json.dumps({"messages": messages, "answer": "5"}) + "\n")
    with pytest.raises(UserError, match=f"chat.jsonl:1: {says.removeprefix('row 0: ')}"):
        load_split(load_config(None, [f"--data.source={path}"]).data, "train")
    if isinstance(messages[0]["content"], str):
        datasets.Dataset.from_list([{"messages": messages, "answer": "5"}]).to_parquet(str(tmp_path / "c.parquet"))
        records = load_split(load_config(None, [f"--data.source={tmp_path / 'c.parquet'}"]).data, "train")
        with pytest.raises(UserError, match=f"c.parquet: {says}"):
            list(records)


@pytest.mark.parametrize("name", ["missing_column", "null_prompt", "no_split"])
def test_cli_bad_data_exits_2_before_writing(bad, name, tmp_path, tokenizer_dir, capsys):
    from reasonrl.cli import main

    source, more = bad[name]
    run = tmp_path / "run"
    argv = ["rl", "--rl.algo=grpo", "--model.preset=micro", f"--model.tokenizer_path={tokenizer_dir}",
            f"--data.source={source}", "--data.prompt_field=question", f"--log.run_dir={run}", "--log.progress=false",
            *more]
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and BAD[name] in err[0], err
    assert not run.exists()


def test_value_checks_count_rows_across_the_tables_chunks(tmp_path):
    """The checks read the mapped table chunk by chunk (bounded memory); row numbers are the table's own."""
    good = pa.table({"question": ["What is 1 + 1?"] * 1000, "answer": ["2"] * 1000})
    bad = pa.table({"question": ["What is 1 + 1?", " "], "answer": ["2", "2"]})
    with ipc.new_stream(str(tmp_path / "chunks.arrow"), good.schema) as w:
        for table in (good, good, good, bad):  # four record batches: four chunks once mapped
            w.write_table(table)
    with pytest.raises(UserError, match=r"chunks.arrow: row 3001: column 'question' is blank"):
        load_split(_cfg(tmp_path / "chunks.arrow"), "train")
