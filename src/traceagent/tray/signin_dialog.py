"""A small window that asks for a Hugging Face token, for use from the tray (no terminal).

Run as ``python -m traceagent.tray.signin_dialog [--error MESSAGE]``: it shows a password-style
entry; on "Sign in" it writes the token to stdout and exits 0; on Cancel or close it
writes nothing and exits 1; with no usable display or no tkinter it exits 2. The tray
runs it in a subprocess, so Tk never shares a thread (or a process) with the tray's GTK
or AppKit loop, and the token only ever travels through the pipe.
"""

from __future__ import annotations

import argparse
import logging
import sys
import webbrowser
from collections.abc import Sequence

log = logging.getLogger(__name__)

TOKENS_URL = "https://huggingface.co/settings/tokens"
EXIT_OK, EXIT_CANCELLED, EXIT_UNAVAILABLE = 0, 1, 2


def ask_token(error: str | None = None) -> str | None:
    """Show the dialog and return the token typed, or None if the user cancelled.

    Raises RuntimeError when no window can be shown (no tkinter, no display).
    """
    try:
        import tkinter as tk
        from tkinter import ttk
    except ImportError as exc:  # Python built without Tk
        raise RuntimeError(f"tkinter is not available: {exc}") from exc
    try:
        root = tk.Tk(className="traceagent")
    except tk.TclError as exc:
        raise RuntimeError(f"cannot open a window: {exc}") from exc

    result: list[str] = []
    root.title("Sign in to Hugging Face")
    root.resizable(False, False)
    frame = ttk.Frame(root, padding=16)
    frame.grid(sticky="nsew")

    ttk.Label(frame, text="Sign in to Hugging Face", font=("TkDefaultFont", 12, "bold")).grid(
        row=0, column=0, columnspan=2, sticky="w"
    )
    ttk.Label(
        frame,
        text="Paste an access token with write access.\ntraceagent stores it in your system keyring when there is one.",
        justify="left",
    ).grid(row=1, column=0, columnspan=2, sticky="w", pady=(6, 4))
    link = ttk.Label(frame, text="Create a token on huggingface.co", foreground="#1a73e8", cursor="hand2")
    link.grid(row=2, column=0, columnspan=2, sticky="w", pady=(0, 8))
    link.bind("<Button-1>", lambda _e: webbrowser.open(TOKENS_URL))

    token = tk.StringVar()
    entry = ttk.Entry(frame, textvariable=token, show="•", width=44)
    entry.grid(row=3, column=0, columnspan=2, sticky="ew")
    message = ttk.Label(frame, text=error or "", foreground="#d93025", wraplength=420, justify="left")
    message.grid(row=4, column=0, columnspan=2, sticky="w", pady=(4, 0))

    def submit(_event: object = None) -> None:
        value = token.get().strip()
        if not value:
            message.configure(text="Paste a token first.")
            return
        result.append(value)
        root.destroy()

    def cancel(_event: object = None) -> None:
        root.destroy()

    buttons = ttk.Frame(frame)
    buttons.grid(row=5, column=0, columnspan=2, sticky="e", pady=(12, 0))
    ttk.Button(buttons, text="Cancel", command=cancel).grid(row=0, column=0, padx=(0, 8))
    ttk.Button(buttons, text="Sign in", command=submit, default="active").grid(row=0, column=1)
    root.bind("<Return>", submit)
    root.bind("<KP_Enter>", submit)
    root.bind("<Escape>", cancel)
    root.protocol("WM_DELETE_WINDOW", cancel)

    # centre on screen, come to the front and take the keyboard: opened from a tray
    # menu, the window would otherwise open behind others or without focus
    root.update_idletasks()
    w, h = root.winfo_reqwidth(), root.winfo_reqheight()
    x = max(0, (root.winfo_screenwidth() - w) // 2)
    y = max(0, (root.winfo_screenheight() - h) // 3)
    root.geometry(f"+{x}+{y}")
    root.attributes("-topmost", True)
    root.after(200, lambda: root.attributes("-topmost", False))
    root.deiconify()
    root.lift()
    entry.focus_force()
    root.mainloop()
    return result[0] if result else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m traceagent.tray.signin_dialog``."""
    parser = argparse.ArgumentParser(description="Ask for a Hugging Face token (prints it on stdout).")
    parser.add_argument("--error", help="a message to show above the buttons (previous attempt failed)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    try:
        value = ask_token(args.error)
    except RuntimeError as exc:
        log.error("%s", exc)
        return EXIT_UNAVAILABLE
    if value is None:
        return EXIT_CANCELLED
    sys.stdout.write(value + "\n")
    sys.stdout.flush()
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
