"""``biospike encode``: windows.h5 -> spikes.h5 for one encoding.

    biospike encode --params '<json>' --input results/{dataset}/windows.h5 \
        --output results/{dataset}/{encoding}/spikes.h5 --encoding delta|population|rate [--threads N]

``--params`` is the dataset's effective ``encode`` section plus the root ``seed`` (and the
``dataset`` name, used to derive the encoder's seed; default: the folder holding windows.h5, i.e.
results/{dataset}/); missing keys take the schema defaults.
"""

from __future__ import annotations

from pathlib import Path

from biospike.cliutil import load_params, stage_parser
from biospike.errors import BiospikeError


def cli(argv: list[str], prog: str = "biospike encode") -> int:
    from biospike.config import derive_seed
    from biospike.encode.stage import ENCODINGS, encode_settings, encode_windows
    from biospike.store import provenance, read_windows, write_spikes

    parser = stage_parser(prog, "Encode windows into spike trains (send-on-delta, population or rate).")
    parser.add_argument("--input", required=True, help="windows.h5 written by `biospike ingest`")
    parser.add_argument("--output", required=True, help="spikes.h5 to write")
    parser.add_argument("--encoding", required=True, choices=ENCODINGS)
    args = parser.parse_args(argv)
    params = load_params(args.params)
    seed = params.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise BiospikeError(f"--params needs the root 'seed' as a non-negative integer, got {seed!r}")
    dataset = str(params.get("dataset") or Path(args.input).resolve().parent.name)
    settings = encode_settings(params)
    if args.encoding == "delta":
        import torch  # the delta encoder's running maximum runs in torch

        torch.set_num_threads(max(1, args.threads))
    win = read_windows(args.input)
    encoder_seed = derive_seed(seed, "encode", dataset, args.encoding)
    spikes = encode_windows(win, args.encoding, settings, encoder_seed, source=args.input)
    spikes.provenance = provenance({"encode": settings, "dataset": dataset, "encoding": args.encoding},
                                   inputs=[args.input], seed=seed)
    write_spikes(args.output, spikes)
    st = spikes.stats
    snr = st.get("reconstruction_snr_db")
    print(f"{dataset}/{args.encoding}: {st['n_windows']} windows x {st['n_steps']} steps of {st['dt_s'] * 1e3:g} ms x "
          f"{spikes.spikes.shape[2]} channels; {st['spikes_per_s_mean']:.1f} spikes/s/channel, sparsity "
          f"{st['sparsity']:.3f}" + (f", reconstruction SNR {snr:.1f} dB" if snr is not None else "")
          + (f", {st['saturated_entries']} saturated entries" if st.get("saturated_entries") else ""))
    return 0
