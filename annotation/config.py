"""The Label Studio labeling config, generated from the taxonomy, and the controls it defines.

Layout: the source image and candidates A-D side by side; under each candidate a required
single choice ``<L>_acceptable`` (yes/no), one multi-select ``<L>_<dimension>`` per dimension with
its defect tags, and an optional ``<L>_rationale`` text. Choice aliases are the taxonomy ids, so
results carry ids, not display names.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from schemas import LETTERS, TAXONOMY, CandidateLabel

ACCEPTABLE = "acceptable"
RATIONALE = "rationale"
YES, NO = "yes", "no"
SOURCE_KEY = "source"


def image_name(letter: str) -> str:
    return f"img_{letter}"


def control_name(letter: str, part: str) -> str:
    """``A_acceptable``, ``A_lighting_shadow``, ``A_rationale``..."""
    return f"{letter}_{part}"


@dataclass(frozen=True)
class Control:
    """One control of the config: what a result for it may contain."""

    letter: str
    part: str  # 'acceptable', 'rationale' or a dimension id
    kind: str  # 'choices' or 'textarea'
    values: frozenset[str]  # allowed choice values (empty for text)
    single: bool


def controls() -> dict[str, Control]:
    """Every control name of the config, with the values it accepts."""
    found: dict[str, Control] = {}
    for letter in LETTERS:
        found[control_name(letter, ACCEPTABLE)] = Control(
            letter, ACCEPTABLE, "choices", frozenset({YES, NO}), True
        )
        for dimension in TAXONOMY.dimensions:
            found[control_name(letter, dimension.id)] = Control(
                letter, dimension.id, "choices", frozenset(dimension.tag_ids()), False
            )
        found[control_name(letter, RATIONALE)] = Control(letter, RATIONALE, "textarea", frozenset(), True)
    return found


def labeling_config() -> str:
    """The XML labeling config for one task = one source and its four candidates."""
    images = [
        '    <View style="flex: 1; min-width: 0">\n'
        '      <Header value="Original product photo" size="5"/>\n'
        f'      <Image name="source" value="${SOURCE_KEY}" maxWidth="100%"/>\n'
        "    </View>"
    ]
    panels = []
    for letter in LETTERS:
        images.append(
            '    <View style="flex: 1; min-width: 0">\n'
            f'      <Header value="Candidate {letter}" size="5"/>\n'
            f'      <Image name="{image_name(letter)}" value="${letter}" maxWidth="100%"/>\n'
            "    </View>"
        )
        target = image_name(letter)
        parts = [
            f'      <Header value="{letter}" size="4"/>',
            f'      <Choices name="{control_name(letter, ACCEPTABLE)}" toName="{target}" choice="single" '
            f'required="true" showInline="true" requiredMessage="Say whether {letter} is acceptable">',
            f'        <Choice value="Acceptable" alias="{YES}"/>',
            f'        <Choice value="Not acceptable" alias="{NO}"/>',
            "      </Choices>",
        ]
        for dimension in TAXONOMY.dimensions:
            parts.append(f'      <Header value="{dimension.label}" size="6"/>')
            parts.append(
                f'      <Choices name="{control_name(letter, dimension.id)}" toName="{target}" choice="multiple">'
            )
            for tag in dimension.tags:
                parts.append(
                    f"        <Choice value={quoteattr(tag.label)} alias={quoteattr(tag.id)} "
                    f"hint={quoteattr(tag.description)}/>"
                )
            parts.append("      </Choices>")
        parts.append(
            f'      <TextArea name="{control_name(letter, RATIONALE)}" toName="{target}" required="false" '
            'maxSubmissions="1" editable="true" rows="2" placeholder="Why? (optional)"/>'
        )
        panels.append(
            '    <View style="flex: 1; min-width: 0; padding: 4px">\n' + "\n".join(parts) + "\n    </View>"
        )
    return (
        "<View>\n"
        '  <Header value="Image 1 is the original product photo; A-D were generated from it. '
        'Mark each candidate acceptable, or not acceptable with the defects you see."/>\n'
        '  <View style="display: flex; gap: 8px">\n' + "\n".join(images) + "\n  </View>\n"
        '  <View style="display: flex; gap: 8px">\n' + "\n".join(panels) + "\n  </View>\n"
        "</View>\n"
    )


def label_result(labels: tuple[CandidateLabel, ...] | list[CandidateLabel]) -> list[dict[str, object]]:
    """The Label Studio ``result`` list that encodes four candidate labels (predictions, simulation)."""
    result: list[dict[str, object]] = []
    for letter, label in zip(LETTERS, labels, strict=True):
        target = image_name(letter)
        result.append(
            _item(letter, ACCEPTABLE, target, "choices", {"choices": [YES if label.acceptable else NO]})
        )
        for dimension in TAXONOMY.dimensions:
            tags = label.defects_in(dimension.id)
            if tags:
                result.append(_item(letter, dimension.id, target, "choices", {"choices": tags}))
        if label.rationale:
            result.append(_item(letter, RATIONALE, target, "textarea", {"text": [label.rationale]}))
    return result


def _item(letter: str, part: str, target: str, kind: str, value: dict[str, object]) -> dict[str, object]:
    return {"from_name": control_name(letter, part), "to_name": target, "type": kind, "value": value}
