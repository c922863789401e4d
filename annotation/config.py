"""The Label Studio labeling config, generated from the taxonomy, and the controls it defines.

Layout, one block per candidate: the original photo and the candidate side by side (each about half
the labeling area, over 400 px on a 1600 px screen, zoomable), then that candidate's form below them: ``<L>_acceptable`` (one box,
"No defects"), and, shown only while that box is clear, one multi-select ``<L>_<dimension>`` per
dimension with its defect tags, a note ``<L>_<dimension>_note`` that appears (and is required) when
the dimension's "Other" tag is picked, and an optional ``<L>_rationale``. A candidate is acceptable
exactly when "No defects" is ticked; ticking it hides the tags, so the form cannot say both.

Keyboard: digits 1-4 mark A-D "No defects"; each tag has one key (``DefectTag.key`` in the
taxonomy) and the candidate's modifier picks the candidate: A none, B Shift, C Alt, D Alt+Shift;
Ctrl+Enter submits. Label Studio's hotkeys are global, so every (candidate, tag) needs a key of its
own: a modifier per candidate is how one key per tag serves all four. Keys that Label Studio (u, h,
v, Alt+R...) or Chromium (Alt+D, Alt+E, Alt+F, Alt+digits) already use are left out.

The data key of the original is ``original``: Label Studio's front end resolves ``$source`` to the
task itself, so an image named after it never loads. Choice aliases are the taxonomy ids, so
results carry ids, not display names.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from schemas import LETTERS, TAXONOMY, CandidateLabel
from schemas.regions import Region, region_kinds

ACCEPTABLE = "acceptable"
RATIONALE = "rationale"
NOTE = "note"
YES, NO = "yes", "no"
SOURCE_KEY = "original"
NO_DEFECTS = "No defects"
OTHER = "Other (describe)"
MODIFIERS = {"A": "", "B": "shift", "C": "alt", "D": "alt+shift"}
"""The modifier that picks each candidate; the tag's own key picks the tag."""
CLEAN_KEYS = {letter: str(i + 1) for i, letter in enumerate(LETTERS)}
"""The key that marks each candidate "No defects"."""
SUBMIT_KEY = "ctrl+enter"
BOX, POINT = "box", "point"
"""Parts of the region controls (``push --regions``): ``A_box`` draws rectangles, ``A_point`` places points."""
REGION_TYPES = {BOX: "rectanglelabels", POINT: "keypointlabels"}
POINT_SIZE = 1.5
"""Drawn size of a point, percent of the image width (a point has no extent of its own)."""


def image_name(letter: str) -> str:
    return f"img_{letter}"


def control_name(letter: str, part: str) -> str:
    """``A_acceptable``, ``A_lighting_shadow``, ``A_lighting_shadow_note``, ``A_rationale``..."""
    return f"{letter}_{part}"


def hotkey(letter: str, key: str) -> str:
    """The hotkey of ``key`` for candidate ``letter``: 'w', 'shift+w', 'alt+w', 'alt+shift+w'."""
    return f"{MODIFIERS[letter]}+{key}" if MODIFIERS[letter] else key


@dataclass(frozen=True)
class Control:
    """One control of the config: what a result for it may contain."""

    letter: str
    part: str  # 'acceptable', 'rationale', a dimension id, or '<dimension id>_note'
    kind: str  # 'choices', 'textarea', 'rectanglelabels' or 'keypointlabels'
    values: frozenset[str]  # allowed choice values or region tags (empty for text)
    single: bool


@functools.cache
def region_label(tag_id: str) -> str:
    """The name of a tag's region label on the page ("Other" tags say their dimension)."""
    for dimension in TAXONOMY.dimensions:
        for tag in dimension.tags:
            if tag.id == tag_id:
                return f"Other ({dimension.label.split()[0].lower()})" if tag.needs_note else tag.label
    raise KeyError(tag_id)


def region_tags(kind: str) -> list[str]:
    """The tags marked with ``kind`` ('box' or 'point'), in taxonomy order."""
    return [tag for tag, marked in region_kinds().items() if marked == kind]


@functools.cache
def controls() -> dict[str, Control]:
    """Every control name of the config, with the values it accepts (built once: every answer pulled reads it;
    not to be changed by callers)."""
    found: dict[str, Control] = {}
    for letter in LETTERS:
        found[control_name(letter, ACCEPTABLE)] = Control(
            letter, ACCEPTABLE, "choices", frozenset({YES, NO}), True
        )
        for dimension in TAXONOMY.dimensions:
            found[control_name(letter, dimension.id)] = Control(
                letter, dimension.id, "choices", frozenset(dimension.tag_ids()), False
            )
            note = f"{dimension.id}_{NOTE}"
            found[control_name(letter, note)] = Control(letter, note, "textarea", frozenset(), True)
        found[control_name(letter, RATIONALE)] = Control(letter, RATIONALE, "textarea", frozenset(), True)
        for part, kind in REGION_TYPES.items():
            found[control_name(letter, part)] = Control(
                letter, part, kind, frozenset(region_tags(part)), False
            )
    return found


def _region_form(letter: str) -> list[str]:
    """Where the candidate's defects are (``push --regions``): pick a tag's label, then drag a box on the
    candidate (or click, for a point). Optional per tag unless the queue requires them (`--require-regions`); each
    region must belong to a ticked tag."""
    target = image_name(letter)
    parts = [
        '    <View style="display: flex; flex-wrap: wrap; align-items: center; column-gap: 8px">',
        f'      <Header value="Where? Pick the defect, then drag a box on candidate {letter} '
        '(a point: click)" size="6"/>',
    ]
    for part in REGION_TYPES:
        tag = "RectangleLabels" if part == BOX else "KeyPointLabels"
        extra = ' canRotate="false"' if part == BOX else ""
        parts.append(
            f'      <{tag} name="{control_name(letter, part)}" toName="{target}" showInline="true"{extra}>'
        )
        for tag_id in region_tags(part):
            parts.append(
                f"        <Label value={quoteattr(region_label(tag_id))} alias={quoteattr(tag_id)}/>"
            )
        parts.append(f"      </{tag}>")
    parts.append("    </View>")
    return parts


def _candidate_form(letter: str, regions: bool = False) -> list[str]:
    target = image_name(letter)
    accept = control_name(letter, ACCEPTABLE)
    parts = [
        f'    <Choices name="{accept}" toName="{target}" choice="multiple" showInline="true">',
        f'      <Choice value="{NO_DEFECTS}" alias="{YES}" hotkey="{CLEAN_KEYS[letter]}"/>',
        "    </Choices>",
        f'    <View visibleWhen="choice-unselected" whenTagName="{accept}" whenChoiceValue="{NO_DEFECTS}" '
        'style="display: grid; grid-template-columns: 1fr 1fr; column-gap: 16px">',
    ]
    for dimension in TAXONOMY.dimensions:
        name = control_name(letter, dimension.id)
        parts.append("      <View>")
        parts.append(f'        <Header value="{dimension.label}" size="6"/>')
        parts.append(f'        <Choices name="{name}" toName="{target}" choice="multiple" showInline="true">')
        for tag in dimension.tags:
            key = f" hotkey={quoteattr(hotkey(letter, tag.key))}" if tag.key else ""
            label = OTHER if tag.needs_note else tag.label
            parts.append(
                f"          <Choice value={quoteattr(label)} alias={quoteattr(tag.id)} "
                f"hint={quoteattr(tag.description)}{key}/>"
            )
        parts.append("        </Choices>")
        parts.append(  # the note shows, and is required, only with "Other"
            f'        <View visibleWhen="choice-selected" whenTagName="{name}" whenChoiceValue="{OTHER}">\n'
            f'          <TextArea name="{control_name(letter, f"{dimension.id}_{NOTE}")}" toName="{target}" '
            f'required="true" requiredMessage="Say what the other {dimension.label.lower()} defect of {letter} is" '
            'maxSubmissions="1" editable="true" rows="1" placeholder="What is the other defect?"/>\n'
            "        </View>"
        )
        parts.append("      </View>")
    parts.append("    </View>")
    if regions:
        parts += _region_form(letter)
    parts.append(
        f'    <TextArea name="{control_name(letter, RATIONALE)}" toName="{target}" required="false" '
        'maxSubmissions="1" editable="true" rows="1" placeholder="Why? (optional)"/>'
    )
    return parts


REVIEW_NOTE = "review_note"
"""Task data key of a returned task's note (the reviewer's comment, or the expected answer of a gold task)."""
RETURNED_NOTE = (
    f'  <Header value="${REVIEW_NOTE}" size="5" style="background: #fff4d6; border-left: 6px solid #d98c00; padding: 0 8px; '
    'margin: 0"/>\n'
)
"""Where a returned task shows why it came back: styled on the header itself, so that on every other task (no
note) it takes no room at all."""


def labeling_config(votes: bool = False, regions: bool = False) -> str:
    """The XML labeling config for one task = the original photo and its four candidates.

    ``votes``: the adjudication project's config, which shows the annotators' answers (``$votes``).
    An annotator's config shows a returned task's note (``$review_note``) above the images.
    ``regions``: each candidate's form also marks where its defects are (``push --regions``).
    """
    rows = []
    for letter in LETTERS:
        original = "original" if letter == "A" else f"original_{letter}"
        rows.append(
            '  <View style="border-top: 2px solid #ccc; padding-top: 8px; margin-top: 8px">\n'
            '    <View style="display: grid; grid-template-columns: 1fr 1fr; gap: 12px">\n'
            "      <View>\n"
            '        <Header value="Original" size="6"/>\n'
            f'        <Image name="{original}" value="${SOURCE_KEY}" zoom="true" zoomControl="true" maxWidth="100%"/>\n'
            "      </View>\n"
            "      <View>\n"
            f'        <Header value="Candidate {letter}" size="6"/>\n'
            f'        <Image name="{image_name(letter)}" value="${letter}" zoom="true" zoomControl="true" '
            'maxWidth="100%"/>\n'
            "      </View>\n"
            "    </View>\n" + "\n".join(_candidate_form(letter, regions)) + "\n  </View>"
        )
    header = (
        '  <Header value="Candidates A-D were generated from the original. Each: No defects (keys 1-4), or its '
        'defects (tag key; Shift for B, Alt for C, Alt+Shift for D). Ctrl+Enter submits." size="5"/>'
    )
    shown_votes = '  <Header value="Annotators\' answers: $votes" size="6"/>\n' if votes else RETURNED_NOTE
    return "<View>\n" + header + "\n" + shown_votes + "\n".join(rows) + "\n</View>\n"


def label_result(labels: tuple[CandidateLabel, ...] | list[CandidateLabel]) -> list[dict[str, object]]:
    """The Label Studio ``result`` list that encodes four candidate labels (predictions, simulation).

    As the form writes it: "No defects" for an acceptable candidate, its tags otherwise, a note for
    each "Other" tag (the label's rationale says what it is).
    """
    result: list[dict[str, object]] = []
    needs_note = {tag.id for d in TAXONOMY.dimensions for tag in d.tags if tag.needs_note}
    for letter, label in zip(LETTERS, labels, strict=True):
        target = image_name(letter)
        if label.acceptable:
            result.append(_item(letter, ACCEPTABLE, target, "choices", {"choices": [YES]}))
        for dimension in TAXONOMY.dimensions:
            tags = label.defects_in(dimension.id)
            if tags:
                result.append(_item(letter, dimension.id, target, "choices", {"choices": tags}))
            if needs_note & set(tags):
                note = label.rationale or "described by the annotator"
                result.append(_item(letter, f"{dimension.id}_{NOTE}", target, "textarea", {"text": [note]}))
        if label.rationale:
            result.append(_item(letter, RATIONALE, target, "textarea", {"text": [label.rationale]}))
        for n, region in enumerate(label.regions):
            result.append(region_result(letter, region, n))
    return result


def region_result(letter: str, region: Region, n: int = 0) -> dict[str, object]:
    """A region as Label Studio stores it: percent of the image, the tag's label (box or point)."""
    x0, y0, x1, y1 = (100 * v for v in region.box)
    part = POINT if region.is_point else BOX
    value: dict[str, object] = {"x": x0, "y": y0}
    if part == BOX:
        value.update(width=x1 - x0, height=y1 - y0, rotation=0)
    else:
        value.update(width=POINT_SIZE)
    value[REGION_TYPES[part]] = [region_label(region.tag)]
    item = _item(letter, part, image_name(letter), REGION_TYPES[part], value)
    return {"id": f"{letter}{part}{n}", **item}


def _item(letter: str, part: str, target: str, kind: str, value: dict[str, object]) -> dict[str, object]:
    return {"from_name": control_name(letter, part), "to_name": target, "type": kind, "value": value}


DECISION = "decision"
COMMENT = "comment"
ACCEPT, REJECT = "accept", "reject"
DECISION_KEYS = {ACCEPT: "1", REJECT: "2"}


def answer_key(letter: str) -> str:
    """Task data key of the reviewed answer's words for candidate ``letter`` (``answer_A``...)."""
    return f"answer_{letter}"


def review_labeling_config() -> str:
    """The reviewer's config: the original and A-D side by side, each candidate's answer under it (``$answer_A``...),
    the person and why it was picked (``$heading``); Accept (key 1) or Reject (key 2) with a comment, which a
    rejection requires (the annotator reads it on their returned task). Ctrl+Enter submits."""
    cells = [
        '    <View><Header value="Original" size="6"/>'
        f'<Image name="{SOURCE_KEY}" value="${SOURCE_KEY}" zoom="true" zoomControl="true" maxWidth="100%"/></View>'
    ]
    for letter in LETTERS:
        cells.append(
            f'    <View><Header value="Candidate {letter}" size="6"/>'
            f'<Image name="{image_name(letter)}" value="${letter}" zoom="true" zoomControl="true" maxWidth="100%"/>'
            f'<Header value="${answer_key(letter)}" size="6"/></View>'
        )
    return (
        "<View>\n"
        '  <Header value="$heading" size="5"/>\n'
        '  <View style="display: grid; grid-template-columns: repeat(5, 1fr); gap: 8px">\n'
        + "\n".join(cells)
        + "\n  </View>\n"
        f'  <Choices name="{DECISION}" toName="{SOURCE_KEY}" choice="single-radio" showInline="true" required="true" '
        'requiredMessage="Accept or reject the answer">\n'
        f'    <Choice value="Accept" alias="{ACCEPT}" hotkey="{DECISION_KEYS[ACCEPT]}"/>\n'
        f'    <Choice value="Reject" alias="{REJECT}" hotkey="{DECISION_KEYS[REJECT]}"/>\n'
        "  </Choices>\n"
        f'  <View visibleWhen="choice-selected" whenTagName="{DECISION}" whenChoiceValue="Reject">\n'
        f'    <TextArea name="{COMMENT}" toName="{SOURCE_KEY}" required="true" '
        'requiredMessage="Say what the annotator should change" maxSubmissions="1" editable="true" rows="2" '
        'placeholder="What should the annotator change? (they read this)"/>\n'
        "  </View>\n"
        "</View>\n"
    )
