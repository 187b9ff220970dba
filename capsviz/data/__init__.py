"""The data: digit images as arrays, with no model in sight.

    mnist.py       MNIST's IDX files, prepared offline, and the training shifts (load_mnist, DataError)
    datasets.py    the dataset specs (mnist, mnist-40, multimnist): the one registry the trainer and pages ask
    multimnist.py  MultiMNIST's overlapping pairs (section 6)
    affine.py      affine transforms, the affNIST-like test set and the real affNIST reader (section 5.2)
    drawing.py     a digit drawn by hand, made into an image the way MNIST made its digits

Imports only capsviz.atomic below it; everything above (model, training, store, analysis, dashboard) may
import it. docs/layout.md draws the whole map.
"""
