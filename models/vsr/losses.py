"""Training losses of TameVSRNet beyond the per-frame terms: the flicker penalty along the exact flow.
"""


from ...kernels.consistency import occlusion_mask
from ...kernels.filters import CHARBONNIER_EPS, charbonnier
from ...kernels.warp import backward_warp


# ---------------------------------------------------------------- losses and discriminator
def temporal_change_loss(sr, hr, flows_forward, flows_backward, eps=CHARBONNIER_EPS):
    """Charbonnier distance between the frame-to-frame changes of `sr` and `hr` along the exact flow.

    sr, hr `[B,T,3,H,W]`; flows `[B,T-1,2,H,W]` (F_{t->t+1}, F_{t+1->t}) at that size. The change of a clip
    x is `x_t - warp(x_{t+1}, F_{t->t+1})`; the distance is averaged over the pixels visible in both
    frames (`occlusion_mask`). Zero when sr = hr; flicker that hr does not have raises it.
    """
    forward, backward = flows_forward.flatten(0, 1), flows_backward.flatten(0, 1)
    visible = 1.0 - occlusion_mask(forward, backward).to(sr.dtype)

    def change(clip):
        return clip[:, :-1].flatten(0, 1) - backward_warp(clip[:, 1:].flatten(0, 1), forward)[0]

    distance = charbonnier(change(sr) - change(hr), eps)
    return (distance * visible).sum() / (visible.sum() * sr.shape[2]).clamp(min=1.0)
