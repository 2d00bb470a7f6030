"""`tame train-vsr` and `tame train-autoencoder`: train the weights the pack ships (recipes in the README)."""
import sys
import time

from ..models.io.weights import load_state_dict
from ..nodes import host
from .cli import EXIT_CANCELLED, EXIT_INVALID, EXIT_OK, ctrl_c_requests_cancel, register_subcommand


def _train_vsr_arguments(parser):
    from ..models.data.degradations import DEGRADATIONS
    from ..models.vsr.loop import SCHEDULES, TrainConfig
    defaults = TrainConfig()
    parser.add_argument("output", help="folder for the training state, the weights (vsr_x{scale}.safetensors) "
                                       "and train_log.jsonl")
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="DIR",
                      help="videos, image-sequence subfolders and/or still images (moved by synthetic motion); "
                           "default: the pack's procedural textures under synthetic motion")
    data.add_argument("--val-data", metavar="DIR", help="validation clips from this folder (default: --data, "
                                                        "other random clips)")
    data.add_argument("--max-side", type=int, default=0,
                      help="downscale videos/sequences whose longer side exceeds this (default 0 = native)")
    data.add_argument("--degradation", choices=DEGRADATIONS, default=defaults.degradation,
                      help="BI: antialiased bicubic; BD: Gaussian blur sigma 1.6 then subsampling; RealBI: BI, "
                           "and on half of the clips random blur, noise and block-DCT compression (default BI)")
    data.add_argument("--scale", type=int, choices=[2, 4, 8], default=defaults.scale, help="default 4")
    data.add_argument("--frames", type=int, default=defaults.num_frames, help="frames per training clip (default 7)")
    data.add_argument("--crop", type=int, default=defaults.crop, help="LR crop side in pixels (default 48)")
    data.add_argument("--batch", type=int, default=defaults.batch_size, help="clips per step (default 4)")
    data.add_argument("--pool-clips", type=int, default=defaults.pool_clips,
                      help="clips kept in memory; one is replaced per step (default 32)")
    data.add_argument("--flow", choices=["fast", "medium", "high", "none"], default="fast",
                      help="built-in flow quality for clips without known motion and for the validation's "
                           "E_warp/RWE; none: exact synthetic flow only, no RWE (default fast)")
    data.add_argument("--flow-weights", metavar="FILE", help="use these RAFT/SpyNet weights from models/tame/flow "
                                                             "instead of the built-in flow")
    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--steps", type=int, default=defaults.steps, help="total steps (default 10000)")
    optimisation.add_argument("--lr", type=float, default=defaults.lr, help="Adam learning rate (default 5e-5)")
    optimisation.add_argument("--schedule", choices=SCHEDULES, default=defaults.schedule,
                              help="cosine decay to 1%% of --lr, or constant (default cosine)")
    optimisation.add_argument("--charbonnier-weight", type=float, default=defaults.charbonnier_weight)
    optimisation.add_argument("--lpips-weight", type=float, default=defaults.lpips_weight,
                              help="used when LPIPS weights are in models/tame/lpips (default 5)")
    optimisation.add_argument("--temporal-weight", type=float, default=defaults.temporal_weight,
                              help="weight of the optional flicker term (frame-to-frame changes of output vs "
                                   "truth along the exact flow; synthetic motion only); default 0 = the seed's loss")
    optimisation.add_argument("--gan", action="store_true", help="add the temporal discriminator (GAN + R1)")
    optimisation.add_argument("--gan-weight", type=float, default=defaults.gan_weight)
    optimisation.add_argument("--r1-weight", type=float, default=defaults.r1_weight)
    optimisation.add_argument("--seed", type=int, default=defaults.seed)
    optimisation.add_argument("--resume", action="store_true",
                              help="continue the run in OUTPUT up to --steps (same network options)")
    optimisation.add_argument("--device", help="torch device (default: CUDA, MPS or CPU; $TAME_DEVICE)")
    optimisation.add_argument("--threads", type=int, help="CPU threads for torch")
    reports = parser.add_argument_group("reports")
    reports.add_argument("--log-every", type=int, default=defaults.log_every)
    reports.add_argument("--val-every", type=int, default=defaults.val_every)
    reports.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    reports.add_argument("--val-clips", type=int, default=defaults.val_clips)
    reports.add_argument("--val-frames", type=int, default=defaults.val_frames)
    reports.add_argument("--val-size", type=int, default=defaults.val_size, help="HR side of validation clips")
    network = parser.add_argument_group("network (the ablation switches)")
    network.add_argument("--channels", type=int, default=16, help="LR feature width (default 16)")
    network.add_argument("--blocks", type=int, default=1, help="residual blocks per propagation branch (default 1)")
    for switch, name in (("propagation", "flow-guided propagation"), ("temporal", "temporal conv/attention"),
                         ("blurpool", "anti-aliased downsampling"), ("hf-shuttle", "high-frequency shuttle"),
                         ("spatial-attention", "spatial self-attention")):
        network.add_argument(f"--no-{switch}", action="store_true", help=f"switch off the {name}")
    network.add_argument("--noise", action="store_true", help="add per-block noise layers")


def _train_vsr_config(args):
    from ..models.vsr.loop import TrainConfig
    net = {"channels": args.channels, "num_blocks": args.blocks, "use_noise": args.noise}
    for switch in ("propagation", "temporal", "blurpool", "hf_shuttle", "spatial_attention"):
        net[f"use_{switch}"] = not getattr(args, f"no_{switch}")
    return TrainConfig(
        scale=args.scale, degradation=args.degradation, steps=args.steps, batch_size=args.batch,
        num_frames=args.frames, crop=args.crop, lr=args.lr, schedule=args.schedule,
        charbonnier_weight=args.charbonnier_weight, lpips_weight=args.lpips_weight,
        temporal_weight=args.temporal_weight, gan=args.gan,
        gan_weight=args.gan_weight, r1_weight=args.r1_weight, pool_clips=args.pool_clips,
        log_every=args.log_every, val_every=args.val_every, checkpoint_every=args.checkpoint_every,
        val_clips=args.val_clips, val_frames=args.val_frames, val_size=args.val_size, seed=args.seed, net=net)


def _train_vsr_source(folder, config, max_side):
    from ..models.data.vsr_sources import FolderSource, ProceduralSource
    return FolderSource(folder, max(config.num_frames, config.val_frames), max_side) if folder \
        else ProceduralSource()


def _train_vsr_lpips(weight, device):
    """The LPIPS network from every file in models/tame/lpips merged, or None when there is none."""
    names = host.list_models("lpips") if weight > 0 else []
    if not names:
        return None
    from ..models.edit.lpips import lpips_from_state_dict
    merged = {}
    for name in names:
        merged.update(load_state_dict(host.model_path("lpips", name)))
    return lpips_from_state_dict(merged).to(device)


def _train_vsr_command(args):
    import torch

    from ..models.vsr.loop import train
    from ..nodes import flow_nodes
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else host.compute_device()
    try:
        config = _train_vsr_config(args)
        source = _train_vsr_source(args.data, config, args.max_side)
        val_source = _train_vsr_source(args.val_data, config, args.max_side) if args.val_data else None
        estimator = None
        if args.flow_weights or args.flow != "none":
            model = args.flow_weights or flow_nodes.BUILTIN
            estimator = flow_nodes.TameLoadFlowModel().load(model, args.flow if args.flow != "none" else "fast",
                                                            12)[0]
        lpips = _train_vsr_lpips(args.lpips_weight, device)
        print_line = lambda text: print(f"tame: {text}", file=sys.stderr, flush=True)
        with ctrl_c_requests_cancel(sys.stderr):
            result = train(config, source, args.output, estimator=estimator, lpips=lpips, val_source=val_source,
                           resume=args.resume, device=device, progress=host.progress(config.steps, "Train VSR"),
                           log=print_line)
    except (OSError, ValueError) as err:
        print(f"tame: {err}", file=sys.stderr)
        return EXIT_INVALID
    except (host.Cancelled, KeyboardInterrupt):
        print("tame: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    print(f"wrote {result.weights_path}; put it into ComfyUI's models/tame/vsr/ folder")
    return EXIT_OK


register_subcommand("train-vsr", "train the Tame video super-resolution network (checkpoints, resume, "
                                 "validation report)", _train_vsr_arguments, _train_vsr_command)


def _train_autoencoder_arguments(parser):
    parser.add_argument("--images", required=True, metavar="DIR",
                        help="folder of training photos (.png/.jpg); bench/edit/export_ae_images.py writes "
                             "the scikit-image photos the shipped weights were trained on")
    parser.add_argument("--steps", type=int, default=500, help="Adam steps (default 500, as the shipped weights)")
    parser.add_argument("--out", required=True, metavar="PATH", help="where to write the .safetensors weights")
    parser.add_argument("--crop", type=int, default=64, help="crop side in pixels, multiple of 4 (default 64)")
    parser.add_argument("--batch", type=int, default=12, help="crops per step (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation and data order (default 0)")
    parser.add_argument("--heldout", metavar="DIR",
                        help="folder of photos not used in training: print the reconstruction PSNR of each")


def _train_autoencoder_command(args):
    from ..models.edit.train_autoencoder import reconstruction_psnr, save_autoencoder, train_autoencoder
    from ..models.io.images import image_files, read_image
    started = time.monotonic()
    every = max(1, args.steps // 20)

    def report(done, total):
        if done % every == 0 or done == total:
            print(f"    step {done}/{total} ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)

    try:
        heldout = {path.name: read_image(path) for path in image_files(args.heldout)} if args.heldout else {}
        model = train_autoencoder(args.images, steps=args.steps, crop=args.crop, batch=args.batch,
                                  seed=args.seed, progress=report)
        path = save_autoencoder(model, args.out)
    except (OSError, ValueError) as err:
        print(f"tame: {err}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("tame: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    print(f"wrote {path} after {args.steps} steps in {time.monotonic() - started:.0f} s")
    for name, image in heldout.items():
        print(f"held-out {name}: reconstruction PSNR {reconstruction_psnr(model, image):.2f} dB")
    return EXIT_OK


register_subcommand("train-autoencoder", "train the built-in autoencoder of the editing nodes on a folder of photos",
                    _train_autoencoder_arguments, _train_autoencoder_command)
