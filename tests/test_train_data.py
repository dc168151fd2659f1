import json

import pytest

from benchsel.chat_templates import GEMMA_TURN_TEMPLATE
from benchsel.errors import UsageError
from benchsel.evalset import load_evalset
from benchsel.train.data import (
    IGNORE_INDEX,
    NEAR_DUPLICATE_JACCARD,
    Example,
    LeakageError,
    Message,
    find_leaks,
    load_examples,
    near_duplicates,
    prepare,
    render_for_training,
    shingles,
    split,
    write_jsonl,
)
from benchsel.train.synth import generate

ANSWER = '{"entities":[{"name":"Corvex","type":"software","role":"object"}],"relationships":[]}'


@pytest.fixture(scope="module")
def evalset():
    return load_evalset("extraction-v1")


def _lines(path, *records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _example(ident: str, text: str, answer: str = ANSWER) -> Example:
    messages = (Message("user", f"Text: {text}"), Message("assistant", answer))
    return Example(messages=messages, source="test", id=ident, text=text)


# ---- importers ----------------------------------------------------------------------------------


def test_chat_messages_are_detected_and_keep_id_and_text(tmp_path):
    path = _lines(
        tmp_path / "chat.jsonl",
        {"id": "a", "text": "Corvex.", "messages": [
            {"role": "system", "content": "Extract."},
            {"role": "user", "content": "Corvex."},
            {"role": "assistant", "content": ANSWER},
        ]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "{}"}]},
    )  # fmt: skip
    first, second = load_examples(path)
    assert first.id == "a" and first.text == "Corvex." and first.source == "chat"
    assert [m.role for m in first.messages] == ["system", "user", "assistant"]
    assert first.answer == ANSWER
    assert second.id == "chat.jsonl:2" and second.text is None and second.input_text == "Hi"


def test_sharegpt_roles_are_mapped(tmp_path):
    path = _lines(tmp_path / "sg.jsonl", {"conversations": [
        {"from": "system", "value": "Extract."},
        {"from": "human", "value": "Gantry."},
        {"from": "gpt", "value": ANSWER},
    ]})  # fmt: skip
    (example,) = load_examples(path)
    assert [m.as_dict() for m in example.messages] == [
        {"role": "system", "content": "Extract."},
        {"role": "user", "content": "Gantry."},
        {"role": "assistant", "content": ANSWER},
    ]
    assert example.source == "sharegpt"


def test_alpaca_jsonl_and_json_array(tmp_path):
    record = {"instruction": "Extract entities.", "input": "Halyard runs.", "output": ANSWER}
    jsonl = _lines(tmp_path / "alpaca.jsonl", record, {"instruction": "Say hi.", "input": "", "output": "hi"})
    array = tmp_path / "alpaca.json"
    array.write_text(json.dumps([record]), encoding="utf-8")
    first, second = load_examples(jsonl)
    assert first.messages == (
        Message("user", "Extract entities.\n\nHalyard runs."),
        Message("assistant", ANSWER),
    )
    assert second.messages[0].content == "Say hi."
    assert load_examples(array)[0].messages == first.messages


def test_evalset_cases_use_the_prompt_and_compact_gold(tmp_path, evalset):
    gold = {"entities": [{"name": "Corvex", "type": "software", "role": "object"}], "relationships": []}
    path = _lines(tmp_path / "cases.jsonl", {"id": "c1", "text": "Corvex is idle.", "gold": gold})
    (example,) = load_examples(path, prompt=evalset.prompt)
    assert example.id == "c1" and example.text == "Corvex is idle."
    assert [m.as_dict() for m in example.messages[:-1]] == evalset.prompt.messages("Corvex is idle.")
    assert example.answer == ANSWER
    with pytest.raises(UsageError, match="prompt"):
        load_examples(path)


def test_explicit_format_is_enforced(tmp_path):
    path = _lines(tmp_path / "chat.jsonl", {"messages": [{"role": "assistant", "content": "x"}]})
    with pytest.raises(UsageError, match=r"chat\.jsonl:1: .*'conversations'"):
        load_examples(path, fmt="sharegpt")
    with pytest.raises(UsageError, match="unknown training-data format"):
        load_examples(path, fmt="csv")  # type: ignore[arg-type]


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
    path.write_text(good + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"bad\.jsonl:3: not valid JSON: .* one JSON object"):
        load_examples(path)


def test_unknown_layout_and_missing_answer_are_usage_errors(tmp_path):
    unknown = _lines(tmp_path / "u.jsonl", {"prompt": "x", "completion": "y"})
    with pytest.raises(UsageError, match=r"u\.jsonl:1: cannot tell the format .*fmt="):
        load_examples(unknown)
    no_answer = _lines(tmp_path / "n.jsonl", {"messages": [{"role": "user", "content": "x"}]})
    with pytest.raises(UsageError, match=r"n\.jsonl:1: the last message must be the assistant's answer"):
        load_examples(no_answer)
    with pytest.raises(UsageError, match="no such file"):
        load_examples(tmp_path / "missing.jsonl")


def test_write_jsonl_round_trips_examples(tmp_path, evalset):
    examples = generate(30, seed=1, prompt=evalset.prompt)
    path = write_jsonl(examples, tmp_path / "out" / "train.jsonl")
    assert load_examples(path) == [
        Example(e.messages, "synth", e.id, e.text) for e in examples
    ]  # source survives


# ---- checks -------------------------------------------------------------------------------------


def test_schema_invalid_targets_are_dropped_and_counted(evalset):
    examples = [
        _example("ok", "Corvex is idle."),
        _example("prose", "Gantry is idle.", "Here you go: nothing"),
        _example("shape", "Brindle is idle.", '{"entities":[{"name":"Brindle","role":"boss"}]}'),
    ]
    data = prepare(examples, schema=evalset.schema)
    assert [d.id for d in data.report.dropped] == ["prose", "shape"]
    assert data.report.counts == {"invalid": 2}
    assert data.report.kept == 1
    assert "kept 1 of 3: 2 schema-invalid targets" in str(data.report)


def test_exact_and_near_duplicates_are_dropped():
    long_text = (
        "The loyalty service runs on the amber node pool and the storage team manages the cobalt edge "
        "cluster while the capacity group owns the quota API that depends on Tallowdb and Corvex today."
    )
    examples = [
        _example("a", long_text),
        _example("b", long_text.upper().replace(".", " !")),
        _example("c", long_text.replace("today", "again")),
        _example("d", "Brindle sends events to the refund service every night after the batch closes."),
    ]
    data = prepare(examples, schema=None, val_fraction=0)
    assert [(d.id, d.reason) for d in data.report.dropped] == [
        ("b", "exact_duplicate"),
        ("c", "near_duplicate"),
    ]
    assert [e.id for e in data.train] == ["a", "d"]
    assert str(data.report).splitlines()[0] == "kept 2 of 4: 1 exact duplicates, 1 near duplicates"


def test_minhash_near_duplicates_agree_with_brute_force(evalset):
    texts = [e.text or "" for e in generate(300, seed=4, prompt=evalset.prompt)]
    texts += [t + " Nobody was paged during the change." for t in texts[:40] if len(t.split()) > 40]
    sets = [shingles(t) for t in texts]
    expected: dict[int, int] = {}
    kept: list[int] = []
    for i, s in enumerate(sets):
        match = next((j for j in kept if len(s & sets[j]) / len(s | sets[j]) >= NEAR_DUPLICATE_JACCARD), None)
        if match is None:
            kept.append(i)
        else:
            expected[i] = match
    found = near_duplicates(sets, NEAR_DUPLICATE_JACCARD)
    assert len(expected) >= 5
    assert set(found) == set(expected)
    for i, j in found.items():
        assert j < i and len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= NEAR_DUPLICATE_JACCARD


def test_leaks_are_refused_then_dropped(evalset):
    case = evalset.cases[0]
    examples = [
        _example("copy", f"Earlier that day the team met. {case.text}"),
        _example("clean", "Brindle sends events to the refund service every night."),
        _example(
            "half", " ".join(evalset.cases[-1].text.split()[: len(evalset.cases[-1].text.split()) // 2 + 5])
        ),
    ]
    with pytest.raises(LeakageError, match=r"copy \(eval case v1-001\).*--drop-leaks drops them") as info:
        prepare(examples, schema=evalset.schema, evalset=evalset)
    assert info.value.ids == ("copy", "half")
    assert info.value.exit_code == 2
    data = prepare(examples, schema=evalset.schema, evalset=evalset, drop_leaks=True)
    assert [e.id for e in (*data.train, *data.validation)] == ["clean"]
    assert "2 leaked into extraction-v1 (dropped)" in data.report.lines()[0]


def test_generated_examples_do_not_leak_into_bundled_evalsets(evalset):
    examples = generate(600, seed=0, prompt=evalset.prompt)
    assert find_leaks(examples, evalset) == {}


def test_split_sizes_and_seed():
    examples = [_example(str(i), f"text number {i}") for i in range(100)]
    for n, expected in ((0, (0, 0)), (1, (1, 0)), (2, (1, 1)), (5, (4, 1)), (100, (90, 10))):
        train, val = split(examples[:n], 0.1, seed=0)
        assert (len(train), len(val)) == expected
        assert {e.id for e in train} | {e.id for e in val} == {e.id for e in examples[:n]}
    assert split(examples, 0.1, seed=0) == split(examples, 0.1, seed=0)
    assert split(examples, 0.1, seed=0)[1] != split(examples, 0.1, seed=1)[1]
    assert split(examples, 0.0, seed=0)[1] == []
    with pytest.raises(UsageError, match="val_fraction"):
        prepare(examples, schema=None, val_fraction=1.0)


def test_prepare_on_many_generated_examples(evalset):
    examples = generate(3000, seed=9, prompt=evalset.prompt)
    data = prepare(examples, schema=evalset.schema, evalset=evalset, seed=9)
    report = data.report
    assert report.total == 3000
    assert report.kept + len(report.dropped) == 3000
    assert len(data.validation) == round(report.kept * 0.1)
    assert report.counts.get("invalid", 0) == 0
    assert report.kept > 2900


# ---- rendering ----------------------------------------------------------------------------------

QWEN_LIKE_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}{{ '<start_of_turn>model\n' + m['content'] + '<end_of_turn>\n' }}"
    "{% else %}{{ '<start_of_turn>' + m['role'] + '\n' + m['content'] + '<end_of_turn>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n<think>\n\n</think>\n\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer(evalset):
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = [evalset.prompt.system, *(c.text for c in evalset.cases), ANSWER]
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )


def _prompt_len(tokenizer, example, template):
    messages = [m.as_dict() for m in example.messages[:-1]]
    text = tokenizer.apply_chat_template(
        messages, chat_template=template, add_generation_prompt=True, tokenize=False
    )
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("template", [GEMMA_TURN_TEMPLATE, QWEN_LIKE_TEMPLATE], ids=["prefix", "rerendered"])
def test_render_masks_exactly_the_prompt(tokenizer, evalset, template):
    example = generate(3, seed=2, prompt=evalset.prompt)[2]
    tokenizer.chat_template = template
    try:
        rendered = render_for_training(example, tokenizer)
    finally:
        tokenizer.chat_template = None
    ids, labels = rendered["input_ids"], rendered["labels"]
    n_prompt = _prompt_len(tokenizer, example, template)
    assert len(ids) == len(labels) == len(rendered["attention_mask"])
    assert set(rendered["attention_mask"]) == {1}
    assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:]
    assert IGNORE_INDEX not in labels[n_prompt:]
    unmasked = [t for t in labels if t != IGNORE_INDEX]
    assert tokenizer.decode(unmasked, skip_special_tokens=True).strip() == example.answer
    assert tokenizer.decode(ids[n_prompt:]).endswith("<end_of_turn>\n")


def test_render_without_a_chat_template_needs_a_fallback(tokenizer, evalset):
    example = generate(1, seed=2, prompt=evalset.prompt)[0]
    with pytest.raises(UsageError, match="no chat template.*fallback_template"):
        render_for_training(example, tokenizer)
    rendered = render_for_training(example, tokenizer, fallback_template=GEMMA_TURN_TEMPLATE)
    text = tokenizer.decode(rendered["input_ids"])
    assert text.startswith("<bos><start_of_turn>user\n" + evalset.prompt.system)
    assert text.endswith("<start_of_turn>model\n" + example.answer + "<end_of_turn>\n")


def test_gemma_is_trained_and_served_with_one_template() -> None:
    from benchsel.backends.demo import demo_chat_template
    from benchsel.train.pipeline import chat_template_fallback

    assert demo_chat_template("gemma3:270m") is GEMMA_TURN_TEMPLATE
    assert chat_template_fallback("gemma3") is GEMMA_TURN_TEMPLATE
