"""Where to teach: the weakest relationship label and the labels whose style fell below the base model's."""

from __future__ import annotations

from replica.evaluation.teaching import (
    teaching_line,
    where_to_teach,
    where_to_teach_markdown,
)


def label_entry(base_style: float, tuned_style: float) -> dict:
    return {"baseline": {"style_similarity": base_style}, "finetuned": {"style_similarity": tuned_style}}


# the English demo's figures (issue 25): family reads as family 35% of the time, its style falls 0.83 -> 0.75
DEMO = {
    "finetuned": {"style_similarity": 0.8},
    "per_relationship": {"friend": label_entry(0.70, 0.86), "family": label_entry(0.83, 0.75)},
    "label_fidelity": {"mean": {"fidelity": 0.66},
                       "pairs": {"friend vs family": {"label_kept": {"friend": 0.97, "family": 0.35}}}},
}


def test_the_weakest_label_is_the_one_read_as_itself_least_often_and_a_style_below_the_base_is_flagged():
    entry = where_to_teach(DEMO)
    assert entry["weakest"] == "family" and entry["ranked_by"] == "fidelity"
    assert entry["style_below_base"] == ["family"]
    assert entry["labels"]["family"] == {"fidelity": 0.35, "style": 0.75, "base_style": 0.83}
    assert entry["overall"] == {"fidelity": 0.66, "style": 0.8}
    line = teaching_line(entry)
    assert line.startswith("weakest relationship: family") and "below the base model for family" in line
    table = "\n".join(where_to_teach_markdown(entry))
    assert "**family** is the weakest" in table and "⚠ below the base" in table


def test_labels_met_in_several_pairs_are_ranked_by_their_mean_share():
    metrics = {**DEMO, "per_relationship": {**DEMO["per_relationship"], "work": label_entry(0.5, 0.6)},
               "label_fidelity": {"pairs": {"friend vs family": {"label_kept": {"friend": 0.9, "family": 0.6}},
                                            "friend vs work": {"label_kept": {"friend": 0.2, "work": 0.7}},
                                            "family vs work": {"label_kept": {"family": 0.6, "work": 0.7}}}}}
    assert where_to_teach(metrics)["weakest"] == "friend"  # (0.9 + 0.2) / 2 = 0.55 < 0.6 < 0.7


def test_without_fidelity_the_lowest_style_is_the_weakest_and_without_labels_there_is_nothing():
    metrics = {"per_relationship": {"friend": label_entry(0.7, 0.9), "family": label_entry(0.6, 0.65)}}
    entry = where_to_teach(metrics)
    assert entry["weakest"] == "family" and entry["ranked_by"] == "style" and entry["style_below_base"] == []
    assert where_to_teach({"finetuned": {}}) is None


def test_the_training_summary_names_the_label_whose_val_loss_fell_least():
    from replica.training.run import by_relationship

    initial = {"val/loss": 5.0, "val/loss_family": 5.0, "val/loss_friend": 6.0}
    final = {"val/loss": 4.0, "val/loss_family": 4.5, "val/loss_friend": 3.0}  # family: -10%, friend: -50%
    found = by_relationship(initial, final)
    assert found["weakest_relationship"] == "family"
    assert found["relationships"]["friend"] == {"initial_val_loss": 6.0, "final_val_loss": 3.0}
    assert by_relationship({}, {"val/loss": 4.0}) == {}
