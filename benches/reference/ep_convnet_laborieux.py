"""The rival's side of the EP-ConvNet speed target (issue 12, docs/BENCHMARKS.md): time per
mini-batch of the reference equilibrium-propagation code (Laborieux-Axel/
Equilibrium-Propagation, its P_CNN class) with the settings of experiments/ep_conv_mnist.toml:
channels 1-32-64, 5 x 5 kernels, 2 x 2 max pooling, fc 10, hard sigmoid, T1 = 60, T2 = 10,
beta = 0.4 with the third (-beta) phase, batches of 50, SGD with rates 0.1 / 0.05 / 0.02.
Inputs are MNIST-shaped random tensors (the reference loads MNIST through torchvision, which
cannot download here; the dynamics' cost does not depend on the pixel values).

Run in a Python 3.11 virtual environment with torch 2.10, against a checkout of the
reference repository (only its model_utils.py is imported; matplotlib, torchvision and its
data_utils are stubbed because the timed code does not use them):
  python benches/reference/ep_convnet_laborieux.py /path/to/Equilibrium-Propagation --threads 2
xbar's side: experiments/ep_conv_mnist.toml with --set rule.epochs=1 and a train_limit,
the `prepare` time of run.json divided by the number of batches.
"""
import argparse
import sys
import time
import types


def reference_module(repo):
    for name in ["matplotlib", "matplotlib.pyplot", "torchvision", "data_utils"]:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["matplotlib"].use = lambda *a, **k: None
    sys.path.insert(0, repo)
    import model_utils
    return model_utils


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("repo", help="checkout of Laborieux-Axel/Equilibrium-Propagation")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    mu = reference_module(args.repo)
    torch.manual_seed(0)
    model = mu.P_CNN(28, [1, 32, 64], [5, 5], [1, 1], [10], mu.make_pools("mm"), [0, 0],
                     activation=mu.hard_sigmoid)
    rates = [0.1, 0.05, 0.02]
    opt = torch.optim.SGD([{"params": model.synapses[i].parameters(), "lr": lr}
                           for i, lr in enumerate(rates)])
    crit = torch.nn.MSELoss(reduction="none")
    mbs, t1, t2, beta = 50, 60, 10, 0.4

    def batch():
        x = torch.rand(mbs, 1, 28, 28)
        y = torch.randint(0, 10, (mbs,))
        neurons = model(x, y, model.init_neurons(mbs, "cpu"), t1, beta=0.0, criterion=crit)
        free = mu.copy(neurons)
        plus = mu.copy(model(x, y, neurons, t2, beta=beta, criterion=crit))
        minus = mu.copy(model(x, y, mu.copy(free), t2, beta=-beta, criterion=crit))
        model.compute_syn_grads(x, y, plus, minus, (beta, -beta), crit)
        opt.step()

    batch()
    start = time.perf_counter()
    for _ in range(args.batches):
        batch()
    per_batch = (time.perf_counter() - start) / args.batches
    print(f"threads {torch.get_num_threads()}: {per_batch:.3f} s per batch of {mbs}, "
          f"{per_batch * 8000 / mbs:.0f} s per epoch of 8,000 digits")


if __name__ == "__main__":
    main()
