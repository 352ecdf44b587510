package render

import (
	"errors"
	"math"
	"testing"
)

func TestTouchEventParams(t *testing.T) {
	good := []TouchEvent{
		{Type: "start", Points: []TouchPoint{{X: 1, Y: 2, ID: 0}}},
		{Type: "move", Points: []TouchPoint{{X: 1, Y: 2, ID: 0}, {X: 3, Y: 4, ID: 9}}, Modifiers: ModShift},
		{Type: "end"},
		{Type: "cancel"},
	}
	for _, ev := range good {
		p, err := touchEventParams(ev)
		if err != nil {
			t.Errorf("%+v: %v", ev, err)
			continue
		}
		if len(p.TouchPoints) != len(ev.Points) || p.TouchPoints == nil {
			t.Errorf("%+v: %d touch points, want %d (and a list, never null)", ev, len(p.TouchPoints), len(ev.Points))
		}
	}
	many := make([]TouchPoint, MaxTouchPoints+1)
	for i := range many {
		many[i].ID = int64(i)
	}
	bad := map[string]TouchEvent{
		"type":         {Type: "tap", Points: []TouchPoint{{}}},
		"start empty":  {Type: "start"},
		"end points":   {Type: "end", Points: []TouchPoint{{}}},
		"too many":     {Type: "start", Points: many},
		"same id":      {Type: "move", Points: []TouchPoint{{ID: 1}, {ID: 1}}},
		"negative id":  {Type: "move", Points: []TouchPoint{{ID: -1}}},
		"huge id":      {Type: "move", Points: []TouchPoint{{ID: maxTouchID}}},
		"far":          {Type: "move", Points: []TouchPoint{{X: maxCoord + 1}}},
		"not a number": {Type: "move", Points: []TouchPoint{{Y: math.NaN()}}},
		"modifiers":    {Type: "end", Modifiers: 16},
	}
	for name, ev := range bad {
		if err := ev.Validate(); !errors.Is(err, ErrBadInput) {
			t.Errorf("%s: err = %v, want ErrBadInput", name, err)
		}
	}
}
