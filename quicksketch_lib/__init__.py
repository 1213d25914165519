"""QuickSketch: classify 28x28 Quick, Draw! sketches with SketchCNN.

One module per stage of the pipeline:

    data        folders of <class>.npy, splits, the fast batch path
    rasterize   strokes -> 28x28 the Quick Draw way
    doodles     the offline default: synthetic doodles
    download    real Quick Draw data, only the rows needed
    model       SketchCNN and ModelConfig
    training    TrainConfig and fit (recipes: named presets)
    checkpoint  self-describing checkpoints
    evaluation  accuracy, confusion, calibration
    inference   Predictor: top-k guesses for drawings and images
    export      ONNX export with a parity check
    teach       teach a trained model a new class from a few drawings
    widgets     the SketchPad drawing widget
    device      device, seeding, precision, `doctor`
    cli         the `quicksketch` command

Importing the package does no work: no downloads, no device choice.
"""

__version__ = "0.1.0"
