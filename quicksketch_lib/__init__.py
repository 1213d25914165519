"""QuickSketch: classify 28x28 Quick, Draw! sketches with SketchCNN.

One module per stage of the pipeline, in reading order: each imports only modules
listed above it.

    errors      exceptions with a one-line message (the CLI maps them to exit codes)
    files       atomic writes: a file is its old self or complete
    progress    progress bars in notebooks and terminals, none in logs
    device      device, seeding, precision, the torchrun process group, `doctor`

    categories  the Quick Draw class names and the ten of the walkthrough
    drawing     what a drawing is: 28x28 uint8, the accepted shapes and values, blank
    locations   where things are: which data, which checkpoint, where to write (paths only)
    rasterize   strokes -> 28x28 the Quick Draw way
    doodles     the offline default: synthetic doodles
    data        folders of <class>.npy, splits, the fast batch path; find_data
    augment     drawing-preserving augmentation
    download    real Quick Draw data, only the rows needed; make demo's data

    model       SketchCNN, ModelConfig, test-time flip
    checkpoint  self-describing checkpoints
    train_step  one optimisation step: optimizer, schedule, EMA, CUDA graph, portable state
    evaluation  held-out loss and accuracy, confusion, calibration
    training    TrainConfig and fit
    recipes     named TrainConfig presets and `--set KEY=VALUE`

    inference   Predictor and OnnxModel: top-k guesses for drawings and images
    export      ONNX (and int8) export with a parity check
    teach       teach a trained model a new class from a few drawings (and forget it)
    game        the game: prompts, timed rounds, live guesses, its threshold, how early, why lost
    plots       the figures of the notebooks, `evaluate --png` and the README
    widgets     the SketchPad drawing widget and the Game (Quick, Draw! in the notebook)

    bench       `quicksketch bench`: the original recipe vs the fast path
    demo        `make demo`: data -> train -> evaluate -> export -> predict
    cli         the `quicksketch` command (and `torchrun ... -m quicksketch_lib train`)

Importing the package does no work: no downloads, no device choice.
"""

__version__ = "0.1.0"
