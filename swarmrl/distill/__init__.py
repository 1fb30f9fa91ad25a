"""On-policy distillation between peers: the teacher role (teacher.py, serves token scores) and
the student side (student.py, asks a teacher for this step's samples). The torch-free signal
they hand the learner stays in training/distill.py (TeacherSignal, the schedule).

Import the modules themselves (``swarmrl.distill.teacher``...): this package re-exports nothing.
"""
