"""The 345 official Quick, Draw! categories and close-match suggestions.

``CATEGORIES`` is Google's list, spelled exactly as in its file names (some
names contain spaces or capitals: ``"house plant"``, ``"The Mona Lisa"``).
It is written out here so the library works without any data folder.
"""

from __future__ import annotations

import difflib

CATEGORIES: tuple[str, ...] = (
    'aircraft carrier', 'airplane', 'alarm clock', 'ambulance', 'angel', 'animal migration',
    'ant', 'anvil', 'apple', 'arm', 'asparagus', 'axe', 'backpack', 'banana', 'bandage', 'barn',
    'baseball', 'baseball bat', 'basket', 'basketball', 'bat', 'bathtub', 'beach', 'bear',
    'beard', 'bed', 'bee', 'belt', 'bench', 'bicycle', 'binoculars', 'bird', 'birthday cake',
    'blackberry', 'blueberry', 'book', 'boomerang', 'bottlecap', 'bowtie', 'bracelet', 'brain',
    'bread', 'bridge', 'broccoli', 'broom', 'bucket', 'bulldozer', 'bus', 'bush', 'butterfly',
    'cactus', 'cake', 'calculator', 'calendar', 'camel', 'camera', 'camouflage', 'campfire',
    'candle', 'cannon', 'canoe', 'car', 'carrot', 'castle', 'cat', 'ceiling fan', 'cello',
    'cell phone', 'chair', 'chandelier', 'church', 'circle', 'clarinet', 'clock', 'cloud',
    'coffee cup', 'compass', 'computer', 'cookie', 'cooler', 'couch', 'cow', 'crab', 'crayon',
    'crocodile', 'crown', 'cruise ship', 'cup', 'diamond', 'dishwasher', 'diving board', 'dog',
    'dolphin', 'donut', 'door', 'dragon', 'dresser', 'drill', 'drums', 'duck', 'dumbbell', 'ear',
    'elbow', 'elephant', 'envelope', 'eraser', 'eye', 'eyeglasses', 'face', 'fan', 'feather',
    'fence', 'finger', 'fire hydrant', 'fireplace', 'firetruck', 'fish', 'flamingo', 'flashlight',
    'flip flops', 'floor lamp', 'flower', 'flying saucer', 'foot', 'fork', 'frog', 'frying pan',
    'garden', 'garden hose', 'giraffe', 'goatee', 'golf club', 'grapes', 'grass', 'guitar',
    'hamburger', 'hammer', 'hand', 'harp', 'hat', 'headphones', 'hedgehog', 'helicopter',
    'helmet', 'hexagon', 'hockey puck', 'hockey stick', 'horse', 'hospital', 'hot air balloon',
    'hot dog', 'hot tub', 'hourglass', 'house', 'house plant', 'hurricane', 'ice cream', 'jacket',
    'jail', 'kangaroo', 'key', 'keyboard', 'knee', 'knife', 'ladder', 'lantern', 'laptop', 'leaf',
    'leg', 'light bulb', 'lighter', 'lighthouse', 'lightning', 'line', 'lion', 'lipstick',
    'lobster', 'lollipop', 'mailbox', 'map', 'marker', 'matches', 'megaphone', 'mermaid',
    'microphone', 'microwave', 'monkey', 'moon', 'mosquito', 'motorbike', 'mountain', 'mouse',
    'moustache', 'mouth', 'mug', 'mushroom', 'nail', 'necklace', 'nose', 'ocean', 'octagon',
    'octopus', 'onion', 'oven', 'owl', 'paintbrush', 'paint can', 'palm tree', 'panda', 'pants',
    'paper clip', 'parachute', 'parrot', 'passport', 'peanut', 'pear', 'peas', 'pencil',
    'penguin', 'piano', 'pickup truck', 'picture frame', 'pig', 'pillow', 'pineapple', 'pizza',
    'pliers', 'police car', 'pond', 'pool', 'popsicle', 'postcard', 'potato', 'power outlet',
    'purse', 'rabbit', 'raccoon', 'radio', 'rain', 'rainbow', 'rake', 'remote control',
    'rhinoceros', 'rifle', 'river', 'roller coaster', 'rollerskates', 'sailboat', 'sandwich',
    'saw', 'saxophone', 'school bus', 'scissors', 'scorpion', 'screwdriver', 'sea turtle',
    'see saw', 'shark', 'sheep', 'shoe', 'shorts', 'shovel', 'sink', 'skateboard', 'skull',
    'skyscraper', 'sleeping bag', 'smiley face', 'snail', 'snake', 'snorkel', 'snowflake',
    'snowman', 'soccer ball', 'sock', 'speedboat', 'spider', 'spoon', 'spreadsheet', 'square',
    'squiggle', 'squirrel', 'stairs', 'star', 'steak', 'stereo', 'stethoscope', 'stitches',
    'stop sign', 'stove', 'strawberry', 'streetlight', 'string bean', 'submarine', 'suitcase',
    'sun', 'swan', 'sweater', 'swing set', 'sword', 'syringe', 'table', 'teapot', 'teddy-bear',
    'telephone', 'television', 'tennis racquet', 'tent', 'The Eiffel Tower',
    'The Great Wall of China', 'The Mona Lisa', 'tiger', 'toaster', 'toe', 'toilet', 'tooth',
    'toothbrush', 'toothpaste', 'tornado', 'tractor', 'traffic light', 'train', 'tree',
    'triangle', 'trombone', 'truck', 'trumpet', 't-shirt', 'umbrella', 'underwear', 'van', 'vase',
    'violin', 'washing machine', 'watermelon', 'waterslide', 'whale', 'wheel', 'windmill',
    'wine bottle', 'wine glass', 'wristwatch', 'yoga', 'zebra', 'zigzag',
)


# The ten classes used for accuracy figures, the demo download and the notebooks.
THE_TEN: tuple[str, ...] = ("airplane", "banana", "bicycle", "bird", "book", "cat", "clock", "dog",
                            "flower", "house")


def closest_categories(name: str, n: int = 3) -> list[str]:
    """Return up to ``n`` official category names that look most like ``name``.

    Matching ignores case, so ``"Smiley-Face"`` suggests ``"smiley face"``.
    """
    by_lower = {c.lower(): c for c in CATEGORIES}
    key = name.strip().lower().replace("_", " ").replace("-", " ")
    matches = difflib.get_close_matches(key, list(by_lower), n=n, cutoff=0.5)
    return [by_lower[m] for m in matches]


MAX_NAME_LENGTH = 64  # Google's longest class name has 23 characters


def check_class_name(name: str) -> str:
    """``name`` without surrounding spaces, or ValueError saying why it cannot name a class: a
    class name is one line of printable text, 1 to :data:`MAX_NAME_LENGTH` characters (it is
    printed one per line by ``predict`` and stored in checkpoints and ONNX metadata)."""
    text = str(name).strip()
    if not text:
        raise ValueError("a class name cannot be empty")
    if not text.isprintable():
        raise ValueError(f"class name {text!r} holds a line break or another control character; "
                         "a class name is one line of printable text")
    if len(text) > MAX_NAME_LENGTH:
        raise ValueError(f"class name is {len(text)} characters long; at most {MAX_NAME_LENGTH}")
    return text
