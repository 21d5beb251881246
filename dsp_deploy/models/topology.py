"""Torch-free description of a network's convolutions and residual streams.

The structure IR, FLOPs accounting and the exporter read this instead of a live module, so
they work (and validate) without importing torch. A *stream* is the tensor that a residual
stage carries: its producers (stem or downsample conv, and the last conv of every block that
adds into it) write channels, its consumers (first conv of each block, the next downsample,
the classifier) read them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

ROLE_STEM = "stem"
ROLE_INNER = "inner"          # conv inside a block whose output feeds the next conv of the block
ROLE_BLOCK_OUT = "block_out"  # last conv of a block: its output is added into the stream
ROLE_DOWNSAMPLE = "downsample"


@dataclass(frozen=True)
class ConvSpec:
    """One convolution of the network, with where its input comes from and its output goes."""

    name: str
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    padding: int
    output_size: tuple[int, int]
    bn: str
    role: str
    block: str | None
    reads: str   # name of the producing conv, or "stream:<id>" for a residual stream
    writes: str | None = None  # "stream:<id>" for stem/block_out/downsample convs

    @property
    def in_block_body(self) -> bool:
        """True for the convs of a residual block's body (the DSP paper's FLOPs convention)."""
        return self.role in (ROLE_INNER, ROLE_BLOCK_OUT)

    def dense_macs(self) -> int:
        """Multiply-accumulates of the unpruned conv at its output resolution."""
        h, w = self.output_size
        return self.out_channels * self.in_channels * self.kernel_size**2 * h * w


@dataclass(frozen=True)
class Stream:
    """A residual stream: channel count, the convs that write it, and who reads it."""

    name: str
    channels: int
    producers: tuple[str, ...]
    consumers: tuple[str, ...]  # conv names, plus "fc" for the classifier


@dataclass(frozen=True)
class Topology:
    """Every conv of a model in execution order, its residual streams and its classifier."""

    model: str
    num_classes: int
    input_size: tuple[int, int]
    convs: tuple[ConvSpec, ...]
    streams: tuple[Stream, ...]
    fc: str = "fc"
    _by_name: dict[str, ConvSpec] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update({c.name: c for c in self.convs})

    def conv(self, name: str) -> ConvSpec:
        """The conv called ``name`` (KeyError if there is none)."""
        return self._by_name[name]

    def has_conv(self, name: str) -> bool:
        return name in self._by_name

    def stream(self, ref: str) -> Stream:
        """A stream by its ``stream:<id>`` reference or bare id."""
        key = ref.removeprefix("stream:")
        for stream in self.streams:
            if stream.name == key:
                return stream
        raise KeyError(ref)

    @property
    def in_channels(self) -> int:
        """Channels of the input image (what the stem conv reads)."""
        return self.convs[0].in_channels

    @property
    def fc_in_features(self) -> int:
        return self.streams[-1].channels

    def fc_macs(self) -> int:
        return self.fc_in_features * self.num_classes


def _out_size(size: tuple[int, int], kernel: int, stride: int, padding: int) -> tuple[int, int]:
    return tuple((s + 2 * padding - kernel) // stride + 1 for s in size)  # type: ignore[return-value]


class _StreamBook:
    """Collects producers and consumers while a topology is being laid out."""

    def __init__(self) -> None:
        self.channels: dict[str, int] = {}
        self.producers: dict[str, list[str]] = {}
        self.consumers: dict[str, list[str]] = {}

    def open(self, name: str, channels: int) -> str:
        self.channels[name] = channels
        self.producers[name] = []
        self.consumers[name] = []
        return f"stream:{name}"

    def produce(self, ref: str, conv: str) -> None:
        self.producers[ref.removeprefix("stream:")].append(conv)

    def consume(self, ref: str, conv: str) -> None:
        self.consumers[ref.removeprefix("stream:")].append(conv)

    def freeze(self) -> tuple[Stream, ...]:
        return tuple(
            Stream(n, self.channels[n], tuple(self.producers[n]), tuple(self.consumers[n]))
            for n in self.channels
        )


def resnet_topology(
    model: str,
    *,
    block: str,
    layers: tuple[int, ...],
    widths: tuple[int, ...],
    stem_width: int,
    stem_kernel: int,
    stem_stride: int,
    stem_pool: bool,
    num_classes: int,
    input_size: tuple[int, int],
    in_channels: int = 3,
) -> Topology:
    """Lay out a (CIFAR or ImageNet) ResNet with torchvision's module names.

    ``block`` is "basic" (two 3x3 convs) or "bottleneck" (1x1, 3x3 with the stride, 1x1 x4).
    """
    expansion = 4 if block == "bottleneck" else 1
    convs: list[ConvSpec] = []
    book = _StreamBook()
    size = input_size
    stem_pad = stem_kernel // 2
    size = _out_size(size, stem_kernel, stem_stride, stem_pad)
    stream = book.open("stem", stem_width)
    convs.append(ConvSpec("conv1", in_channels, stem_width, stem_kernel, stem_stride, stem_pad, size, "bn1",
                          ROLE_STEM, None, "input", stream))
    book.produce(stream, "conv1")
    if stem_pool:
        size = _out_size(size, 3, 2, 1)
    channels = stem_width
    for stage, (count, width) in enumerate(zip(layers, widths), start=1):
        for index in range(count):
            prefix = f"layer{stage}.{index}"
            stride = 2 if (index == 0 and stage > 1) else 1
            out_channels = width * expansion
            block_in = stream
            if stride != 1 or channels != out_channels:
                out_size = _out_size(size, 1, stride, 0)
                stream = book.open(f"layer{stage}", out_channels)
                name = f"{prefix}.downsample.0"
                convs.append(ConvSpec(name, channels, out_channels, 1, stride, 0, out_size,
                                      f"{prefix}.downsample.1", ROLE_DOWNSAMPLE, prefix, block_in, stream))
                book.consume(block_in, name)
                book.produce(stream, name)
            if block == "basic":
                plan = [(3, stride, width), (3, 1, out_channels)]
            else:
                plan = [(1, 1, width), (3, stride, width), (1, 1, out_channels)]
            reads, cin = block_in, channels
            for position, (kernel, conv_stride, cout) in enumerate(plan, start=1):
                size = _out_size(size, kernel, conv_stride, kernel // 2)
                last = position == len(plan)
                name = f"{prefix}.conv{position}"
                convs.append(ConvSpec(name, cin, cout, kernel, conv_stride, kernel // 2, size,
                                      f"{prefix}.bn{position}", ROLE_BLOCK_OUT if last else ROLE_INNER,
                                      prefix, reads, stream if last else None))
                if reads.startswith("stream:"):
                    book.consume(reads, name)
                reads, cin = name, cout
            book.produce(stream, f"{prefix}.conv{len(plan)}")
            channels = out_channels
    book.consume(stream, "fc")
    return Topology(model, num_classes, input_size, tuple(convs), book.freeze())
