"""The text corpus the tiny models' byte-level BPE tokenizer is trained on.

The tiny models (rft.models.tiny) need a tokenizer that turns the tasks' prompts and answers into
few tokens, so that a model of a few million parameters can learn the answer format quickly. This
module lists that vocabulary: the reasoning tags, the TRANCE transformation functions and their
values, class names for classification and detection, the detection JSON keys, digits,
punctuation, geometry/math words and common English. `rft.tasks.vocabulary_corpus()` (the tasks'
own prompts) is added when that function exists.

Everything here is deterministic (no sets iterated, no randomness): the same code gives the same
corpus, and so the same tokenizer. Print it with `python -m rft.models.vocab`.
"""

from __future__ import annotations

# Tags that become single, non-special tokens in the tiny tokenizer.
REASONING_TAGS = ["<think>", "</think>", "<answer>", "</answer>"]

TRANCE_FUNCTIONS = {
    "change_size": ["small", "medium", "large"],
    "change_color": ["gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow"],
    "change_material": ["rubber", "metal", "glass"],
    "change_shape": ["cube", "sphere", "cylinder"],
    "change_position": [
        "front", "behind", "left", "right",
        "front_left", "front_right", "behind_left", "behind_right",
    ],
}

DETECTION_KEYS = ["Position", "Confidence"]

COCO_CLASSES = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
]

FINE_GRAINED_CLASSES = [
    "rose", "tulip", "daisy", "sunflower", "dandelion", "lily", "orchid", "lotus",
    "sparrow", "eagle", "owl", "parrot", "pelican", "robin", "swan", "gull",
    "sedan", "coupe", "convertible", "pickup", "van", "suv", "hatchback", "wagon",
    "airliner", "jet", "biplane", "glider", "helicopter",
    "beagle", "poodle", "pug", "husky", "terrier", "retriever", "bulldog",
    "persian", "siamese", "bengal", "sphynx", "ragdoll",
]

SHAPES = [
    "circle", "circles", "square", "squares", "triangle", "triangles", "rectangle", "star",
    "ellipse", "polygon", "line", "point", "dot", "dots", "object", "objects", "shape", "shapes",
    "cube", "cubes", "sphere", "spheres", "cylinder", "cylinders", "ball", "balls", "block",
    "blocks",
]

COLORS = [
    "red", "green", "blue", "yellow", "purple", "cyan", "brown", "gray", "grey", "black", "white",
    "orange", "pink", "magenta",
]

MATH_WORDS = [
    "angle", "angles", "degree", "degrees", "triangle", "radius", "diameter", "area",
    "perimeter", "length", "width", "height", "side", "sides", "parallel", "perpendicular",
    "tangent", "chord", "arc", "center", "midpoint", "segment", "ratio", "value", "sum",
    "difference", "product", "total", "number", "equal", "equals", "therefore", "since", "so",
    "subtract", "add", "plus", "minus", "times", "divide", "divided", "multiply", "count",
    "remaining", "left", "remove", "removed", "x", "y", "z", "A", "B", "C", "D", "E", "AB",
    "BC", "AC", "ABC", "cm", "m", "units", "sqrt", "pi",
]

COMMON_WORDS = [
    "the", "a", "an", "of", "to", "in", "is", "are", "was", "be", "and", "or", "not", "no",
    "yes", "it", "this", "that", "these", "those", "there", "here", "with", "on", "at", "by",
    "for", "from", "as", "into", "after", "before", "then", "than", "if", "all", "each", "every",
    "any", "some", "many", "much", "more", "most", "less", "few", "one", "two", "three", "four",
    "five", "six", "seven", "eight", "nine", "ten", "first", "second", "third", "last", "next",
    "what", "which", "who", "how", "where", "when", "why", "image", "picture", "photo", "scene",
    "question", "answer", "answers", "output", "final", "thinking", "process", "think", "reason",
    "reasoning", "step", "steps", "let", "us", "we", "I", "you", "your", "see", "look", "find",
    "give", "provide", "show", "shows", "shown", "contain", "contains", "containing", "please",
    "describe", "identify", "detect", "locate", "category", "categories", "class", "classes",
    "type", "species", "kind", "bounding", "box", "boxes", "coordinates", "confidence",
    "position", "format", "json", "list", "integer", "decimal", "places", "between", "only",
    "must", "should", "can", "will", "do", "does", "did", "has", "have", "had", "make", "made",
    "change", "changes", "changed", "transform", "transformation", "transformations", "initial",
    "state", "final", "sequence", "apply", "applied", "attribute", "attributes", "size", "color",
    "material", "shape", "small", "large", "big", "medium", "tiny", "left", "right", "front",
    "behind", "top", "bottom", "above", "below", "near", "far", "same", "different", "other",
    "visible", "object", "objects", "its", "their", "them", "they", "he", "she", "his", "her",
    "assistant", "user", "system", "helpful", "tags", "tag", "respectively", "following",
    "options", "option", "choose", "correct", "true", "false", "none", "null", "unknown",
]

PUNCTUATION = list(".,:;!?'\"()[]{}<>-_=+*/\\|@#$%^&~`") + ["°", "√", "π", "∠", "△", "×", "÷"]


def _prompt_lines() -> list[str]:
    """Prompt and answer shapes the tasks use, in this module's own words."""
    lines = [
        "Output the thinking process in <think> </think> and the final answer in <answer> </answer> tags.",
        "First think about the question step by step in <think> </think>, then give the answer in <answer> </answer>.",
        "<think> Let me count the objects in the image. </think> <answer> 3 </answer>",
        "<think> The object is a red metal cube. </think><answer>change_color(0, blue)</answer>",
        "How many objects are in the image?",
        "How many objects are left after removing all the red cubes?",
        "What is the category of the object in the image?",
        "Which class does the main object in this picture belong to?",
        "Detect all objects of the category in the image and output their bounding boxes as JSON.",
        "Give each box as [x1, y1, x2, y2] with integer coordinates and a confidence between 0 and 1.",
        "Find the transformations that change the initial scene into the final scene.",
        "What is the value of x? Choose the correct option.",
    ]
    for name, values in TRANCE_FUNCTIONS.items():
        for i, value in enumerate(values):
            lines.append(f"{name}({i}, {value})")
    for i, cls in enumerate(COCO_CLASSES + FINE_GRAINED_CLASSES):
        x1, y1 = (37 * i) % 900, (53 * i) % 900
        lines.append(f"Detect every {cls} in the image.")
        lines.append(
            f'[{{"Position": [{x1}, {y1}, {x1 + 64}, {y1 + 96}], "Confidence": 0.{(i * 7) % 100:02d}}}]'
        )
        lines.append(f"<answer>{cls}</answer>")
    for n in range(11):
        for shape in SHAPES[:6]:
            lines.append(f"There are {n} {shape} in the image. <answer>{n}</answer>")
    for color in COLORS:
        lines.append(f"The {color} object is a {color} {SHAPES[(len(color) * 3) % len(SHAPES)]}.")
    lines.append("0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000 0.5 0.25 0.75 0.95 3.14 90 180 360")
    lines.append("x + y = 10, AB = 5 cm, ∠ABC = 60°, area = π × r^2, sqrt(2) ≈ 1.41")
    return lines


def base_corpus() -> list[str]:
    """The corpus defined in this module, one string per line."""
    words = (
        REASONING_TAGS + DETECTION_KEYS + list(TRANCE_FUNCTIONS) + COCO_CLASSES
        + FINE_GRAINED_CLASSES + SHAPES + COLORS + MATH_WORDS + COMMON_WORDS + PUNCTUATION
    )
    values = [v for vs in TRANCE_FUNCTIONS.values() for v in vs]
    return _prompt_lines() + [" ".join(words), " ".join(values), " ".join(words).capitalize()]


def task_corpus() -> list[str]:
    """The tasks' own vocabulary (`rft.tasks.vocabulary_corpus()`), or nothing if not there."""
    try:
        from rft.tasks import vocabulary_corpus  # written separately; optional at build time
    except ImportError:
        return []
    found = vocabulary_corpus()
    if isinstance(found, str):
        return [found]
    return [str(line) for line in found]


def corpus() -> list[str]:
    """Everything the tokenizer is trained on, in a fixed order."""
    return base_corpus() + task_corpus()


if __name__ == "__main__":
    print("\n".join(corpus()))
