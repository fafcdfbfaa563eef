"""``biospike encode``: windows.h5 -> spikes.h5 for one encoding.

    biospike encode --params '<envelope>' --input results/{dataset}/windows.h5 \
        --output results/{dataset}/{encoding}/spikes.h5 --encoding delta|population|rate [--threads N]

The envelope's ``settings.encode`` is the dataset's effective ``encode`` section (schema defaults
for missing keys); the encoder's seed derives from the root seed, the dataset name (given, or the
one windows.h5 recorded) and the encoding.
"""

from __future__ import annotations

from biospike.cliutil import load_context, stage_parser

__all__ = ["cli"]


def cli(argv: list[str], prog: str = "biospike encode") -> int:
    """``biospike encode``: parse ``argv``, encode windows.h5 into spikes.h5; returns the exit code."""
    from biospike.encode.stage import ENCODINGS, encode_windows
    from biospike.store import provenance, read_windows, write_spikes

    parser = stage_parser(prog, "Encode windows into spike trains (send-on-delta, population or rate).",
                          sections=("encode",))
    parser.add_argument("--input", required=True, help="windows.h5 written by `biospike ingest`")
    parser.add_argument("--output", required=True, help="spikes.h5 to write")
    parser.add_argument("--encoding", required=True, choices=ENCODINGS.names())
    args = parser.parse_args(argv)
    ctx = load_context(args)
    settings = ctx["encode"]
    if args.encoding == "delta":
        import torch  # the delta encoder's running maximum runs in torch

        torch.set_num_threads(max(1, args.threads))
    win = read_windows(args.input)
    dataset = ctx.name("dataset", win.dataset)
    win.dataset = dataset
    spikes = encode_windows(win, args.encoding, settings, ctx.derive_seed("encode", dataset, args.encoding),
                            source=args.input)
    spikes.provenance = provenance({"encode": settings, "dataset": dataset, "encoding": args.encoding},
                                   inputs=[args.input], seed=ctx.root_seed())
    write_spikes(args.output, spikes)
    st = spikes.stats
    snr = st.get("reconstruction_snr_db")
    print(f"{dataset}/{args.encoding}: {st['n_windows']} windows x {st['n_steps']} steps of {st['dt_s'] * 1e3:g} ms x "
          f"{spikes.spikes.shape[2]} channels; {st['spikes_per_s_mean']:.1f} spikes/s/channel, sparsity "
          f"{st['sparsity']:.3f}" + (f", reconstruction SNR {snr:.1f} dB" if snr is not None else "")
          + (f", {st['saturated_entries']} saturated entries" if st.get("saturated_entries") else ""))
    return 0
