"""The synthetic home: a simulated room seen by several wall cameras with microphones.

A floor plan with furniture (:mod:`.scene`), an actor made of capsules (:mod:`.actor`), action
scripts for the 16 Home-1 classes (:mod:`.script`), a numpy ray caster (:mod:`.render`),
procedural sounds heard at every camera's microphone (:mod:`.audio`), and the writer of a
dataset in the MultiSensor-Home layout (:mod:`.generate`, used by ``vicokd synth``).
"""

from vicokd.synthetic.generate import generate_home, plan_dataset
from vicokd.synthetic.options import SynthOptions, SynthSummary
from vicokd.synthetic.scene import build_home
from vicokd.synthetic.script import CLASSES

__all__ = ["CLASSES", "SynthOptions", "SynthSummary", "build_home", "generate_home", "plan_dataset"]
