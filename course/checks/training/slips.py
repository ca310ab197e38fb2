"""The second catalogue (`SLIPS`): wrong versions of the training parts written as a learner
would write them."""

from __future__ import annotations

from course.checks.core import Slip
from course.checks.training.mistakes import C, T

# ---------------------------------------------------------------- the second catalogue

SLIPS = [
    Slip("warmup_from_zero", T + "lr_at", """
def lr_at(step, lr, min_lr, warmup_iters, max_iters):
    if step < warmup_iters:
        return lr * (step / warmup_iters)
    if step >= max_iters:
        return min_lr
    t = (step - warmup_iters) / (max_iters - warmup_iters)
    return min_lr + (lr - min_lr) * (1 + math.cos(t * math.pi)) / 2
""", "warmup_off_by_one"),
    Slip("cosine_unclamped", T + "lr_at", """
def lr_at(step, lr, min_lr, warmup_iters, max_iters):
    if step < warmup_iters:
        return lr * (step + 1) / warmup_iters
    ratio = (step - warmup_iters) / (max_iters - warmup_iters)
    return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * ratio))
""", "cosine_past_max"),
    Slip("linear_decay", T + "lr_at", """
def lr_at(step, lr, min_lr, warmup_iters, max_iters):
    if step < warmup_iters:
        return lr * (step + 1) / warmup_iters
    if step >= max_iters:
        return min_lr
    frac = (step - warmup_iters) / (max_iters - warmup_iters)
    return lr - frac * (lr - min_lr)
""", None),
    Slip("groups_by_name", T + "param_groups", """
def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
""", None),
    Slip("one_group", T + "param_groups", """
def param_groups(model, weight_decay):
    return [{"params": list(model.parameters()), "weight_decay": weight_decay}]
""", None),
    Slip("grads_accumulate_across_steps", T + "train_step", """
def train_step(model, optimizer, scheduler, micro_batches, grad_clip, dtype="auto"):
    losses = []
    for x, y in micro_batches:
        _, loss = model(x, y)
        (loss / len(micro_batches)).backward()
        losses.append(loss.item())
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    return torch.tensor(sum(losses) / len(losses))
""", "no_zero_grad"),
    Slip("sum_of_micro_losses", T + "train_step", """
def train_step(model, optimizer, scheduler, micro_batches, grad_clip, dtype="auto"):
    optimizer.zero_grad()
    total = 0.0
    for x, y in micro_batches:
        _, loss = model(x, y)
        loss.backward()
        total += loss.item()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    return torch.tensor(total / len(micro_batches))
""", "loss_not_divided"),
    Slip("clip_first", T + "train_step", """
def train_step(model, optimizer, scheduler, micro_batches, grad_clip, dtype="auto"):
    optimizer.zero_grad(set_to_none=True)
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    mean = 0.0
    for x, y in micro_batches:
        _, loss = model(x, y)
        (loss / len(micro_batches)).backward()
        mean = mean + loss.detach() / len(micro_batches)
    optimizer.step()
    scheduler.step()
    return mean
""", "clip_before_backward"),
    Slip("eval_with_inference_mode_only", T + "estimate_loss", """
def estimate_loss(model, splits, batch_size, block_size, eval_iters, device="cpu", seed=0,
                  dtype="auto"):
    result = {}
    with torch.inference_mode():
        for name, data in splits.items():
            g = torch.Generator().manual_seed(seed)
            losses = [model(*get_batch(data, batch_size, block_size, device, g))[1].item()
                      for _ in range(eval_iters)]
            result[name] = sum(losses) / len(losses)
    return result
""", "no_eval_mode"),
    Slip("one_generator_for_all_splits", T + "estimate_loss", """
@torch.no_grad()
def estimate_loss(model, splits, batch_size, block_size, eval_iters, device="cpu", seed=0,
                  dtype="auto"):
    was = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, data in splits.items():
        out[name] = sum(model(*get_batch(data, batch_size, block_size, device, g))[1].item()
                        for _ in range(eval_iters)) / eval_iters
    model.train(was)
    return out
""", None),
    Slip("generator_not_loaded", C + "load_checkpoint", """
def load_checkpoint(path, model=None, optimizer=None, scheduler=None, data_generator=None,
                    map_location="cpu"):
    path = Path(path)
    if path.is_dir():
        path = path / "ckpt.pt"
    if not path.exists():
        raise FileNotFoundError(path)
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    for obj, key in ((model, "model"), (optimizer, "optimizer"), (scheduler, "scheduler")):
        if obj is not None:
            obj.load_state_dict(ckpt[key])
    if data_generator is not None:
        set_rng_states(ckpt["rng"])
    return ckpt
""", "data_position_not_restored"),
    Slip("save_without_random_states", C + "save_checkpoint", """
def save_checkpoint(path, model, optimizer, scheduler, step, data_generator, extra=None):
    state = dict(model=model.state_dict(), optimizer=optimizer.state_dict(),
                 scheduler=scheduler.state_dict(), step=step,
                 data_rng=data_generator.get_state())
    state.update(extra or {})
    torch.save(state, path)
""", None),
    Slip("save_in_place", C + "save_checkpoint", """
def save_checkpoint(path, model, optimizer, scheduler, step, data_generator, extra=None):
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                  "scheduler": scheduler.state_dict(), "step": step, "rng": rng_states(),
                  "data_rng": data_generator.get_state()}
    if extra:
        checkpoint.update(extra)
    with open(path, "wb") as f:
        torch.save(checkpoint, f)
""", "not_atomic"),
    Slip("fit_all_parameters_decayed", T + "fit", """
def fit(model, data, config, device="cpu"):
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                            betas=(config.beta1, config.beta2))
    sched = make_scheduler(opt, config)
    gen = torch.Generator().manual_seed(config.seed)
    model.train()
    out = []
    for step in range(config.max_iters):
        batches = [get_batch(data["train"], config.batch_size, config.block_size, device, gen)
                   for _ in range(config.grad_accum)]
        out.append(float(train_step(model, opt, sched, batches, config.grad_clip, config.dtype)))
    return out
""", "no_param_groups"),
    Slip("cosine_ignores_warmup_offset", T + "lr_at", """
def lr_at(step, lr, min_lr, warmup_iters, max_iters):
    if step < warmup_iters:
        return lr * (step + 1) / warmup_iters
    if step >= max_iters:
        return min_lr
    progress = step / max_iters
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)
""", "cosine_from_step_zero"),
    Slip("cosine_down_to_zero", T + "lr_at", """
def lr_at(step, lr, min_lr, warmup_iters, max_iters):
    if step < warmup_iters:
        return lr * (step + 1) / warmup_iters
    if step >= max_iters:
        return min_lr
    progress = (step - warmup_iters) / (max_iters - warmup_iters)
    return lr * 0.5 * (1 + math.cos(math.pi * progress))
""", "decay_to_zero"),
    Slip("warmup_one_step_long", T + "lr_at", """
def lr_at(step, lr, min_lr, warmup_iters, max_iters):
    if step <= warmup_iters:
        return lr * (step + 1) / warmup_iters
    if step >= max_iters:
        return min_lr
    progress = (step - warmup_iters) / max(1, max_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
""", None),
    Slip("groups_per_module_tied_twice", T + "param_groups", """
def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if p.requires_grad:
                (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
""", None),
    Slip("groups_decay_swapped", T + "param_groups", """
def param_groups(model, weight_decay):
    big = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    small = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": big, "weight_decay": 0.0},
            {"params": small, "weight_decay": weight_decay}]
""", None),
    Slip("scheduler_before_optimizer", T + "train_step", """
def train_step(model, optimizer, scheduler, micro_batches, grad_clip, dtype="auto"):
    optimizer.zero_grad(set_to_none=True)
    n = len(micro_batches)
    total = 0.0
    for x, y in micro_batches:
        with autocast(x.device, dtype):
            _, loss = model(x, y)
        (loss / n).backward()
        total += loss.detach().float() / n
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scheduler.step()
    optimizer.step()
    return total
""", None),
    Slip("returns_last_micro_loss", T + "train_step", """
def train_step(model, optimizer, scheduler, micro_batches, grad_clip, dtype="auto"):
    optimizer.zero_grad(set_to_none=True)
    for x, y in micro_batches:
        with autocast(x.device, dtype):
            _, loss = model(x, y)
        (loss / len(micro_batches)).backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    return loss.detach()
""", "last_micro_batch_loss"),
    Slip("estimate_stays_in_train_mode", T + "estimate_loss", """
@torch.no_grad()
def estimate_loss(model, splits, batch_size, block_size, eval_iters, device="cpu", seed=0,
                  dtype="auto"):
    out = {}
    for name, data in splits.items():
        g = torch.Generator().manual_seed(seed)
        losses = []
        for _ in range(eval_iters):
            x, y = get_batch(data, batch_size, block_size, device, g)
            with autocast(device, dtype):
                _, loss = model(x, y)
            losses.append(loss.item())
        out[name] = sum(losses) / len(losses)
    return out
""", "no_eval_mode"),
    Slip("estimate_leaves_eval_mode", T + "estimate_loss", """
@torch.no_grad()
def estimate_loss(model, splits, batch_size, block_size, eval_iters, device="cpu", seed=0,
                  dtype="auto"):
    model.eval()
    out = {}
    for name, data in splits.items():
        g = torch.Generator().manual_seed(seed)
        total = 0.0
        for _ in range(eval_iters):
            x, y = get_batch(data, batch_size, block_size, device, g)
            with autocast(device, dtype):
                _, loss = model(x, y)
            total += loss.item()
        out[name] = total / eval_iters
    return out
""", "mode_not_restored"),
    Slip("estimate_last_batch_only", T + "estimate_loss", """
@torch.no_grad()
def estimate_loss(model, splits, batch_size, block_size, eval_iters, device="cpu", seed=0,
                  dtype="auto"):
    was_training = model.training
    model.eval()
    out = {}
    for name, data in splits.items():
        g = torch.Generator().manual_seed(seed)
        for _ in range(eval_iters):
            x, y = get_batch(data, batch_size, block_size, device, g)
            with autocast(device, dtype):
                _, loss = model(x, y)
        out[name] = loss.item()
    model.train(was_training)
    return out
""", "last_batch_only"),
    Slip("save_forgets_optimizer", C + "save_checkpoint", """
def save_checkpoint(path, model, optimizer, scheduler, step, data_generator, extra=None):
    model = getattr(model, "_orig_mod", model)
    model = getattr(model, "module", model)
    state = {"model": model.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
             "rng": rng_states(), "data_rng": data_generator.get_state()}
    state.update(extra or {})
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
""", "optimizer_not_saved"),
    Slip("load_ignores_folder", C + "load_checkpoint", """
def load_checkpoint(path, model=None, optimizer=None, scheduler=None, data_generator=None,
                    map_location="cpu"):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location=map_location, weights_only=True)
    if model is not None:
        model = getattr(getattr(model, "_orig_mod", model), "module", model)
        model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if data_generator is not None:
        data_generator.set_state(state["data_rng"])
        set_rng_states(state["rng"])
    return state
""", None),
    Slip("fit_one_micro_batch", T + "fit", """
def fit(model, data, config, device="cpu"):
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr,
                                  betas=(config.beta1, config.beta2))
    scheduler = make_scheduler(optimizer, config)
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    losses = []
    for _ in range(config.max_iters):
        batch = get_batch(data["train"], config.batch_size, config.block_size, device,
                          generator)
        loss = train_step(model, optimizer, scheduler, [batch], config.grad_clip, config.dtype)
        losses.append(loss.item())
    return losses
""", "no_accumulation"),
]
