import signal
import sys

from .cli import main

if hasattr(signal, "SIGPIPE"):  # `python -m ddcore list | head` ends quietly, as other command-line tools do
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
sys.exit(main())
