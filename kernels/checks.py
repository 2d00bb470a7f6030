"""Input validators shared by the kernels: each raises a ValueError that says what was wrong and what to do."""
import torch


def validate_flow(flow, name="flow"):
    """Raise ValueError unless `flow` is a floating tensor `[N,2,H,W]`."""
    if not isinstance(flow, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor [N,2,H,W], got {type(flow).__name__}.")
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"{name} must have shape [N,2,H,W] (x and y displacement in pixels), "
                         f"got {tuple(flow.shape)}.")
    if not flow.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {flow.dtype}.")


def validate_images(images, name="image"):
    """Raise ValueError unless `images` is a floating tensor `[N,C,H,W]`."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor [N,C,H,W], got {type(images).__name__}.")
    if images.dim() != 4:
        raise ValueError(f"{name} must have shape [N,C,H,W], got {tuple(images.shape)}.")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {images.dtype}; "
                         f"convert it with .float() first.")


def validate_image_pair(a, b, names=("a", "b")):
    """Raise ValueError unless `a` and `b` are floating `[N,C,H,W]` tensors of one shape."""
    validate_images(a, names[0])
    validate_images(b, names[1])
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} {tuple(a.shape)} and {names[1]} {tuple(b.shape)} must have the same shape.")


def validate_planes(planes, name="planes"):
    """Raise ValueError unless `planes` is a finite floating tensor `[N,3,C,H,W]`."""
    if not isinstance(planes, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor [N,3,C,H,W], got {type(planes).__name__}.")
    if planes.dim() != 5 or planes.shape[1] != 3:
        raise ValueError(f"{name} must have shape [N,3,C,H,W] (three feature planes per item), "
                         f"got {tuple(planes.shape)}.")
    if not planes.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {planes.dtype}; convert it with .float().")
    if not bool(torch.isfinite(planes).all()):
        raise ValueError(f"{name} contain NaN/Inf values; the tri-plane source (fit, latent or file) is "
                         f"broken — regenerate or reload it.")


def describe_shape(value):
    """The shape of a tensor, else the type name: for error messages about wrong inputs."""
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def validate_cameras(cam2world, intrinsics):
    """Raise ValueError unless cam2world `[N,4,4]` and intrinsics `[N,3,3]` are finite tensors of one batch."""
    if not isinstance(cam2world, torch.Tensor) or cam2world.dim() != 3 or cam2world.shape[1:] != (4, 4):
        raise ValueError(f"cam2world must be a tensor [N,4,4] (OpenCV camera-to-world matrices), got "
                         f"{describe_shape(cam2world)}.")
    if not isinstance(intrinsics, torch.Tensor) or intrinsics.dim() != 3 or intrinsics.shape[1:] != (3, 3):
        raise ValueError(f"intrinsics must be a tensor [N,3,3] (normalised: principal point 0.5), got "
                         f"{describe_shape(intrinsics)}.")
    if cam2world.shape[0] != intrinsics.shape[0]:
        raise ValueError(f"cam2world has {cam2world.shape[0]} cameras but intrinsics {intrinsics.shape[0]}; "
                         f"give one intrinsics matrix per camera.")
    if not (bool(torch.isfinite(cam2world).all()) and bool(torch.isfinite(intrinsics).all())):
        raise ValueError("cam2world and intrinsics must be finite (found NaN/Inf in a camera).")
