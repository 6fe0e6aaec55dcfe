"""Layer shapes of well-known networks (per image; batch and output stage are the caller's)."""

__all__ = ["ALEXNET"]

#: AlexNet CONV1-5 (REFERENCE.md): H and W unpadded with the paper's padding, grouped as in
#: the paper (CONV2, CONV4 and CONV5 in two groups).
ALEXNET = {
    "CONV1": dict(C=3, H=227, W=227, M=96, R=11, S=11, stride=4, padding=0, groups=1),
    "CONV2": dict(C=96, H=27, W=27, M=256, R=5, S=5, stride=1, padding=2, groups=2),
    "CONV3": dict(C=256, H=13, W=13, M=384, R=3, S=3, stride=1, padding=1, groups=1),
    "CONV4": dict(C=384, H=13, W=13, M=384, R=3, S=3, stride=1, padding=1, groups=2),
    "CONV5": dict(C=384, H=13, W=13, M=256, R=3, S=3, stride=1, padding=1, groups=2),
}
