"""nn.Modules, their weight loading, and the procedures that run or fit them (no ComfyUI)."""
