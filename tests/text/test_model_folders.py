"""Saving segmenters and taggers: a folder is written as a whole, never over someone else's files."""

import json

import pytest

from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.text.base import load_segmenter
from llmlab.text.pos import load_tagger

LINE = "中国人民银行研究生命起源"


def test_a_folder_holding_other_files_is_refused_before_training_and_kept(tmp_path, capsys):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "dictionary.txt").write_text("# my words\n云计算 5 n\n", encoding="utf-8")
    train = tmp_path / "train.txt"
    train.write_text("中国 人民\n" * 5, encoding="utf-8")
    assert main(["seg", "train", "--algo", "fmm", "--train", str(train), "-o", str(folder)]) == 2
    assert "holds files that are not its own (dictionary.txt)" in capsys.readouterr().err
    assert [p.name for p in folder.iterdir()] == ["dictionary.txt"]
    assert (folder / "dictionary.txt").read_text(encoding="utf-8") == "# my words\n云计算 5 n\n"
    assert main(["seg", "train", "--algo", "fmm", "--train", str(train), "-o", str(train)]) == 2
    assert "is a file, expected a folder" in capsys.readouterr().err


def test_a_model_file_with_a_damaged_file_list_claims_no_entries(tmp_path):
    """A model.json whose "files" is not a list of names owns nothing, so the folder is not taken over."""
    from llmlab.text.base import MODEL_FILE, model_folder_entries

    for files, owned in ((["weights.npz"], {MODEL_FILE, "weights.npz"}), ([1, "weights.npz"], set()),
                         ("weights.npz", set()), (None, set())):
        (tmp_path / MODEL_FILE).write_text(json.dumps({"files": files}), encoding="utf-8")
        assert model_folder_entries(tmp_path, MODEL_FILE) == owned, files


def test_a_segmenter_and_a_tagger_do_not_share_a_folder(segmenters, train_tagged, tmp_path):
    from llmlab.text.pos import HmmTagger

    segmenters["perceptron"].save(tmp_path / "m")
    with pytest.raises(InputError, match="not its own"):
        HmmTagger.train(train_tagged[:50]).save(tmp_path / "m")
    assert load_segmenter(tmp_path / "m").cut(LINE) == segmenters["perceptron"].cut(LINE)
    HmmTagger.train(train_tagged[:50]).save(tmp_path / "t")
    with pytest.raises(InputError, match="not its own"):
        segmenters["fmm"].save(tmp_path / "t")
    load_tagger(tmp_path / "t")


def test_resaving_replaces_the_whole_model_and_a_failed_save_keeps_the_old(segmenters, tmp_path, monkeypatch):
    import llmlab.text.perceptron as perceptron

    folder = tmp_path / "m"
    segmenters["perceptron"].save(folder)
    first = sorted(p.name for p in folder.iterdir())
    segmenters["unigram"].save(folder)  # another kind over an earlier model: its files go with it
    assert sorted(p.name for p in folder.iterdir()) == ["segmenter.json"]
    assert load_segmenter(folder).kind == "unigram"
    segmenters["perceptron"].save(folder)
    assert sorted(p.name for p in folder.iterdir()) == first

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(perceptron, "_write_counts", full_disk)
    with pytest.raises(OSError):
        segmenters["perceptron"].save(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left behind
    assert load_segmenter(folder).cut(LINE) == segmenters["perceptron"].cut(LINE)


def _edit_state(folder, edit, model_file="segmenter.json"):
    path = folder / model_file
    doc = json.loads(path.read_text(encoding="utf-8"))
    edit(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


DAMAGE = {  # kind -> how a hand edit or a damaged copy changed segmenter.json
    "no state": ("unigram", lambda d: d.pop("state")),
    "empty state": ("hmm", lambda d: d.update(state={})),
    "state a list": ("bigram", lambda d: d.update(state=[])),
    "no bigrams": ("bigram", lambda d: d["state"].pop("bigrams")),
    "count not a number": ("fmm", lambda d: d["state"]["lexicon"]["counts"].update({"中国": "x"})),
    "hmm trans 3x4": ("hmm", lambda d: d["state"].update(trans=d["state"]["trans"][:3])),
    "hmm emission of 3": ("hmm", lambda d: d["state"]["emit"].update({"中": [0.0, 0.0, 0.0]})),
    "hmm emission of strings": ("hmm", lambda d: d["state"]["emit"].update({"中": ["a", "b", "c", "d"]})),
    "perceptron trans 4x3": ("perceptron", lambda d: d["state"].update(trans=[r[:3] for r in d["state"]["trans"]])),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_segmenter_file_is_one_clear_error_on_load(damage, segmenters, tmp_path, capsys):
    kind, edit = DAMAGE[damage]
    folder = segmenters[kind].save(tmp_path / "m")
    _edit_state(folder, edit)
    with pytest.raises(InputError, match=r"segmenter\.json' is damaged or not from this llmlab version: \S"):
        load_segmenter(folder).cut(LINE)  # on load, not later when cutting
    assert main(["seg", "cut", "--model", str(folder), "--input", str(folder / "segmenter.json")]) == 2
    assert "is damaged" in capsys.readouterr().err


def test_a_config_field_of_the_wrong_type_is_named(segmenters, tmp_path):
    folder = segmenters["unigram"].save(tmp_path / "m")
    _edit_state(folder, lambda d: d["state"]["config"].update(min_count="1"))
    with pytest.raises(InputError, match="LatticeConfig.min_count must be an int, got '1'"):
        load_segmenter(folder)


def test_a_damaged_word_list_of_a_perceptron_is_named(segmenters, tmp_path):
    folder = segmenters["perceptron"].save(tmp_path / "m")
    (folder / "av_words.txt").write_text("中国 0\n", encoding="utf-8")
    with pytest.raises(InputError, match="^accessor-variety word list .*av_words.txt' line 1: count"):
        load_segmenter(folder)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_perceptron_whose_weights_hold_a_nan_or_inf_is_refused(segmenters, tmp_path, value):
    """Bytes overwritten in weights.safetensors (here one weight) loaded silently and cut by garbage."""
    from safetensors.numpy import load_file, save_file

    folder = segmenters["perceptron"].save(tmp_path / "m")
    arrays = load_file(str(folder / "weights.safetensors"))
    arrays["weights"][0, 0] = value
    save_file(arrays, str(folder / "weights.safetensors"))
    with pytest.raises(InputError, match=r"weights.safetensors' is damaged: \['weights'\] hold NaN or infinite"):
        load_segmenter(folder)


def test_a_damaged_tagger_file_is_one_clear_error(train_tagged, tmp_path):
    from llmlab.text.pos import HmmTagger

    folder = HmmTagger.train(train_tagged[:50]).save(tmp_path / "t")
    _edit_state(folder, lambda d: d["state"].update(trans=d["state"]["trans"][1:]), "tagger.json")
    with pytest.raises(InputError, match=r"tagger\.json' is damaged .*: trans has shape"):
        load_tagger(folder)
    _edit_state(folder, lambda d: d.update(state={}), "tagger.json")
    with pytest.raises(InputError, match=r"tagger\.json' is damaged .*: no 'tags' entry"):
        load_tagger(folder)


def test_loading_a_model_as_another_class_names_both(segmenters, tmp_path):
    from llmlab.text.lattice import UnigramSegmenter
    from llmlab.text.matching import MaxMatchSegmenter

    segmenters["unigram"].save(tmp_path / "u")
    with pytest.raises(InputError, match="holds a 'unigram' segmenter, not a MaxMatchSegmenter$"):
        MaxMatchSegmenter.load(tmp_path / "u")  # one class, three kinds: it named the kind ''
    segmenters["fmm"].save(tmp_path / "f")
    with pytest.raises(InputError, match="holds a 'fmm' segmenter, not a 'unigram'$"):
        UnigramSegmenter.load(tmp_path / "f")
    assert MaxMatchSegmenter.load(tmp_path / "f").cut("研究生命") == segmenters["fmm"].cut("研究生命")
