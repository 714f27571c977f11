import json

from engine.bench import main


def test_bench_prints_figures_and_a_json_line_last(capsys):
    assert main(["--repeats", "2", "--skip", "video,train", "--threads", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])
    for key in (
        "detect_ms",
        "fit_end_to_end_ms",
        "render_128_ms",
        "render_128_fwd_bwd_ms",
        "relight_512_ms",
        "peak_rss_mb",
    ):
        assert figures[key] > 0, key
    if "cest_end_to_end_ms" in figures:  # weights ship: each estimator's share is timed too
        parts = sum(
            figures[f"estimator_{n}_ms"] for n in ("viewpoint", "shape", "reflectance", "illumination")
        )
        assert 0.05 * figures["cest_end_to_end_ms"] < parts < figures["cest_end_to_end_ms"] * 1.5


def test_bench_measures_with_the_threads_cest_reconstruct_uses():
    from engine.bench import build_parser
    from engine.cli import build_parser as cli_parser

    sub = next(a for a in cli_parser()._actions if a.dest == "command").choices["reconstruct"]
    assert build_parser().parse_args([]).threads == sub.parse_args(["x", "-o", "y"]).threads == 1


def test_bench_prints_the_video_and_live_figures_and_their_bound(capsys, tmp_path):
    from tests.conftest import make_video

    clip = make_video(tmp_path / "clip.mp4", frames=8)
    argv = ["--repeats", "1", "--skip", "render,train", "--video", str(clip), "--video-frames", "8"]
    assert main([*argv, "--threads", "1"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["video_frames"] == 8 and figures["video_fps"] > 0
    assert 1 <= figures["live_frames"] <= 8 and figures["live_fps"] > 0
    assert figures["live_source_fps"] == 20  # the 10 frames/s clip played at twice its rate
    reconstruct = figures.get("cest_end_to_end_ms") or figures["fit_end_to_end_ms"]
    bound = 1000 / (figures["detect_ms"] + reconstruct)
    assert abs(figures["video_bound_fps"] - bound) < 0.01 * bound
    assert abs(figures["video_fps_to_bound"] - figures["video_fps"] / figures["video_bound_fps"]) < 0.01
    assert "live_fps_to_bound" in figures
