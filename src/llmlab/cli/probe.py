"""``llmlab probe``: linear probes on a frozen model's layers (topic 30)."""

from __future__ import annotations

from llmlab.cli.common import add_command, finite_float, load_any_model


def register(sub) -> None:
    p = add_command(sub, "probe", "how well a linear classifier reads a label from each layer of a frozen model "
                                  "(mean and last-token pooling), beside the same model with random weights", run)
    p.add_argument("--model", required=True, help="model directory (a causal decoder, e.g. runs/small/model)")
    p.add_argument("--train-size", type=int, default=2000, help="labelled sentiment sentences to fit each probe on")
    p.add_argument("--test-size", type=int, default=0, help="dev sentences to score on (0 = all)")
    p.add_argument("--c", type=finite_float, default=1.0, help="inverse L2 strength of the logistic regression")
    p.add_argument("--no-control", action="store_true", help="skip the random-weights control")
    p.add_argument("--seed", type=int, default=0,
                   help="which training and test sentences, and the control's weights; in [0, 2**32)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")


def run(args) -> int:
    import numpy as np
    import torch

    from llmlab.adapt.probe import POOLINGS, probe
    from llmlab.core.errors import InputError
    from llmlab.data.corpora import sentiment
    from llmlab.models import CausalLM

    if args.train_size < 2 or args.test_size < 0:
        raise InputError(f"--train-size must be >= 2 and --test-size >= 0, got {args.train_size}, {args.test_size}")
    if not 0 <= args.seed < 2**32:  # numpy's and torch's generators take no other
        raise InputError(f"--seed must be in [0, 2**32), got {args.seed}")
    model, tok = load_any_model(args.model, device=args.device)
    if tok is None or not isinstance(model, CausalLM):
        raise InputError(f"{args.model!r}: probing needs a causal decoder saved with its tokenizer")
    train, test = sentiment("train"), sentiment("dev")
    rng = np.random.default_rng(args.seed)
    train = [train[i] for i in rng.permutation(len(train))[: args.train_size]]
    if args.test_size:  # at random: the dev split lists its positives first, so its head is one class
        test = [test[i] for i in rng.permutation(len(test))[: args.test_size]]
    results = {"trained": probe(model, tok, train, test, args.c)}
    if not args.no_control:
        torch.manual_seed(args.seed)
        control = CausalLM(model.config).to(args.device)  # float, even for a quantized model
        results["random"] = probe(control, tok, train, test, args.c)
    first = results["trained"]
    print(f"sentiment: {first.n_train} training, {first.n_test} test sentences; majority class {first.majority:.3f}")
    cols = [(name, pooling) for name in results for pooling in POOLINGS]
    print("layer  " + "  ".join(f"{name}/{pooling:<4}" for name, pooling in cols))
    for layer in range(len(first.accuracy["mean"])):
        label = "embed" if layer == 0 else f"{layer:>5}"
        print(f"{label:<6} " + "  ".join(f"{results[n].accuracy[p][layer]:>{len(n) + 1 + max(4, len(p))}.3f}"
                                          for n, p in cols))
    return 0
